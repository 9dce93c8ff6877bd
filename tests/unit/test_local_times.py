"""Times shown to people are the district's (Asia/Shanghai), never UTC: events and the API carry instants in UTC,
and the units' messages and the demo's printed tables must turn them into the district's wall-clock time. (The
exports' are in test_exports.py, the dashboard's in the integration test of the page.)"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from rich.console import Console

from civicbus.district import load_district
from civicbus.events import EventKind, Ticket
from civicbus.settings import DEFAULT_CONFIG_DIR
from ops.demo import _tickets_table, _timeline_table
from services.notify.messages import MessageRenderer
from tests.factories import make_ticket

DISTRICT = load_district(DEFAULT_CONFIG_DIR)
DISTRICT_ZONE = ZoneInfo(DISTRICT.timezone)
RENDERER = MessageRenderer(DISTRICT, "http://127.0.0.1:8084")
SIGN_FOR_DUE = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # 17:30 in the district
RESOLVE_DUE = datetime(2026, 11, 5, 16, 15, tzinfo=UTC)  # Fri 6 November 00:15 in the district: another day


def ticket(**fields) -> Ticket:
    return make_ticket(ticket_id="SF20261102000001", source_event_id="e-1", area="xixi", area_name="西溪村",
                       lead_unit="xixi", sign_for_due=SIGN_FOR_DUE, resolve_due=RESOLVE_DUE,
                       created_at=datetime(2026, 11, 2, 1, 0, tzinfo=UTC), **fields)


def test_a_units_message_gives_its_deadlines_in_the_districts_time():
    text = RENDERER.render_ticket(ticket(), EventKind.ticket_routed, "lead").text
    assert "签收时限：11月02日 17:30" in text and "办结时限：11月06日 00:15" in text
    assert "09:30" not in text and "16:15" not in text


def test_an_instant_written_into_a_note_is_shown_in_the_districts_time():
    # Triage notes a granted extension with the instant as it stores it (UTC).
    message = RENDERER.render_ticket(
        ticket(), EventKind.ticket_extension_decided, "lead", note="同意延期至 2026-11-27T09:30:00+00:00。")
    assert "说明：同意延期至 11月27日 17:30。" in message.text and "+00:00" not in message.text


def test_a_reminder_gives_the_due_time_in_the_districts_time():
    text = RENDERER.render_ticket(ticket(), EventKind.ticket_reminder, "lead", deadline="sign_for",
                                  due=SIGN_FOR_DUE).text
    assert "签收时限将于11月02日 17:30到期" in text


def test_the_leaders_morning_summary_is_dated_by_the_districts_day():
    leader = next(iter(DISTRICT.leaders.values()))
    late_evening_utc = datetime(2026, 11, 2, 23, 0, tzinfo=UTC)  # already Tue 3 November, 07:00, in the district
    message = RENDERER.render_daily(leader, [ticket()], late_evening_utc, max_listed=5)
    assert "2026年11月03日" in message.text


def _printed(table) -> str:
    console = Console(record=True, width=240)
    console.print(table)
    return console.export_text()


def test_the_demos_timeline_is_printed_in_the_districts_time():
    timeline = [{"at": "2026-11-02T01:00:05+00:00", "kind": "ticket.routed", "actor": "civicbus.triage", "note": ""},
                {"at": "2026-11-02T16:20:00Z", "kind": "ticket.acknowledged", "actor": "张三", "note": "已签收"}]
    printed = _printed(_timeline_table(timeline, DISTRICT_ZONE))
    assert "09:00:05" in printed and "00:20:00" in printed
    assert "01:00:05" not in printed and "16:20:00" not in printed and "UTC" not in printed


def test_the_demos_tickets_are_printed_with_local_deadlines():
    item = {**ticket().model_dump(mode="json"), "assist_units": []}
    printed = _printed(_tickets_table([item], {"xixi": "西溪村"}, DISTRICT_ZONE))
    assert "11-02 17:30" in printed and "11-06 00:15" in printed
