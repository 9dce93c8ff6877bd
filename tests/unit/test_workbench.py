"""The workbench's pure parts: who may do what in which state (and that triage's state machine accepts what is
offered), which tickets are in which tab, file types told by their bytes, login throttling, account checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from civicbus.events import (
    Action,
    Actor,
    Complaint,
    ComplaintReceived,
    Extension,
    ReturnReason,
    Satisfaction,
    TicketCommand,
    TicketState,
)
from services.reporting.workbench.accounts import (
    Account,
    AccountError,
    PersonRole,
    check_password,
    checked_account,
    machine_role,
)
from services.reporting.workbench.attachments import FilesystemStore, clean_name, sniff_type
from services.reporting.workbench.intake import IntakeClient, IntakeUnavailable, actor_headers
from services.reporting.workbench.sessions import FAILURE_WINDOW, throttle_wait, wait_text
from services.reporting.workbench.tickets import (
    ROLE_ACTIONS,
    ROLE_TABS,
    Viewer,
    allowed_actions,
    explanation_lines,
    in_tab,
    may_see,
    ordered,
    scope_query,
    tab_contents,
)
from services.reporting.workbench.validation import validation_detail
from services.triage.decide import TriageEngine
from services.triage.lifecycle import Applied, apply

NOW = datetime(2026, 11, 23, 2, tzinfo=UTC)  # Monday 10:00 in Shanghai

STAFF = Account("laobao.zhang", "张三", PersonRole.staff, unit="laobao")
ASSISTING = Account("sifa.li", "李四", PersonRole.staff, unit="sifa")
OTHER_STAFF = Account("xixi.wang", "王五", PersonRole.staff, unit="xixi")
DISPATCHER = Account("pingan.xu", "徐丽", PersonRole.dispatcher, unit="pingan")
CALLBACK = Account("pingan.he", "何志刚", PersonRole.callback, unit="pingan")
LEADER = Account("zhengxiuying", "郑秀英", PersonRole.leader, leader="zhengxiuying")
MAIN_LEADER = Account("wangjianguo", "王建国", PersonRole.leader, leader="wangjianguo")
ADMIN = Account("admin", "管理员", PersonRole.admin)
EVERYONE = (STAFF, ASSISTING, DISPATCHER, CALLBACK, LEADER, ADMIN)


@pytest.fixture(scope="module")
def routed(district):
    event = ComplaintReceived(source="12345", recorded_at=NOW, data=Complaint(content="老板拖欠工资三个月"))
    ticket = TriageEngine(district).decide(event).tickets[0]
    assert ticket.state is TicketState.routed and ticket.lead_unit == "laobao"
    return ticket.model_copy(update={"assist_units": ["sifa"]})


@pytest.fixture(scope="module")
def tickets(routed):
    """The ticket in each state the workbench offers something in."""
    acknowledged = routed.model_copy(update={"state": TicketState.acknowledged, "acknowledged_at": NOW})
    extension = Extension(until=routed.resolve_due + timedelta(days=3), reason="需协调", requested_by="张三",
                          requested_at=NOW)
    return {
        "routed": routed,
        "manual": routed.model_copy(update={"state": TicketState.manual, "lead_unit": "", "assist_units": []}),
        "acknowledged": acknowledged,
        "extension_pending": acknowledged.model_copy(update={"pending_extension": extension}),
        "resolved": acknowledged.model_copy(update={"state": TicketState.resolved, "resolved_at": NOW}),
        "closed": acknowledged.model_copy(update={"state": TicketState.closed, "closed_at": NOW}),
    }


def offered(account: Account, ticket, district, now: datetime = NOW) -> list[str]:
    return allowed_actions(Viewer.of(account, district), ticket.model_dump(mode="python"), now)


def test_each_role_is_offered_what_its_state_allows(tickets, district):
    assert offered(STAFF, tickets["routed"], district) == ["sign_for", "return", "request_extension", "add_note"]
    assert offered(STAFF, tickets["acknowledged"], district) == ["return", "request_extension", "add_note", "resolve"]
    assert offered(STAFF, tickets["extension_pending"], district) == ["return", "add_note", "resolve"]
    assert offered(STAFF, tickets["resolved"], district) == ["add_note"]
    assert offered(STAFF, tickets["closed"], district) == []
    assert offered(ASSISTING, tickets["acknowledged"], district) == ["assist_feedback"], "协办: feedback only"
    assert offered(DISPATCHER, tickets["manual"], district) == ["add_note", "assign"]
    assert offered(DISPATCHER, tickets["routed"], district) == ["add_note", "reassign"]
    assert offered(CALLBACK, tickets["resolved"], district) == ["add_note", "record_callback"]
    assert offered(CALLBACK, tickets["acknowledged"], district) == ["add_note"]
    assert offered(LEADER, tickets["extension_pending"], district) == ["add_note", "decide_extension", "supervise"]
    assert offered(LEADER, tickets["closed"], district) == []
    assert "sign_for" in offered(ADMIN, tickets["routed"], district)


def test_an_extension_is_not_offered_once_the_deadline_passed(tickets, district):
    late = tickets["acknowledged"].resolve_due + timedelta(minutes=1)
    assert "request_extension" not in offered(STAFF, tickets["acknowledged"], district, late)


def _command(action: str, account: Account, ticket) -> TicketCommand:
    role, unit = machine_role(account)
    fields = {
        "return": {"return_reason": ReturnReason.other, "note": "不属本单位职责"},
        "request_extension": {"extension_until": ticket.resolve_due + timedelta(days=2), "note": "需协调"},
        "add_note": {"note": "已联系"}, "assist_feedback": {"note": "已配合"},
        "resolve": {"result": "已办结"},
        "assign": {"unit": "xixi"}, "reassign": {"unit": "xixi"},
        "record_callback": {"resolved": True, "satisfaction": Satisfaction.satisfied},
        "decide_extension": {"grant": True},
    }.get(action, {})
    machine_action = {"assist_feedback": "add_note", "assign": "reassign"}.get(action, action)
    return TicketCommand(source="workbench", ticket_id=ticket.ticket_id, action=Action(machine_action),
                         actor=Actor(name=account.name, role=role, unit=unit), **fields)


def test_what_is_offered_the_state_machine_accepts(tickets, district):
    """Offered, not decided: but an action the page offers must not be one the state machine refuses for the
    person's role or the ticket's state."""
    for state, ticket in tickets.items():
        for account in EVERYONE:
            for action in offered(account, ticket, district):
                outcome = apply(ticket, _command(action, account, ticket), NOW, district)
                assert isinstance(outcome, Applied), (state, account.role, action, getattr(outcome, "message", ""))


def test_no_role_is_offered_an_action_beyond_its_own(tickets, district):
    for ticket in tickets.values():
        for account in EVERYONE:
            assert set(offered(account, ticket, district)) <= ROLE_ACTIONS[account.role]


def test_a_unit_sees_only_tickets_it_leads_or_assists(tickets, district):
    view = tickets["routed"].model_dump(mode="python")
    assert may_see(Viewer.of(STAFF, district), view) and may_see(Viewer.of(ASSISTING, district), view)
    assert not may_see(Viewer.of(OTHER_STAFF, district), view)
    assert all(may_see(Viewer.of(account, district), view) for account in (DISPATCHER, CALLBACK, LEADER, ADMIN))
    assert scope_query(Viewer.of(STAFF, district))["$and"][1] == {
        "$or": [{"lead_unit": "laobao"}, {"assist_units": "laobao"}]}


def test_a_leader_in_charge_lists_the_lines_in_their_charge_a_main_leader_everything(district):
    in_charge = Viewer.of(LEADER, district)
    assert "laobao" in in_charge.units_in_charge and "xixi" not in in_charge.units_in_charge
    assert scope_query(in_charge)["$and"][1]["$or"][0] == {"leader": "zhengxiuying"}
    assert scope_query(Viewer.of(MAIN_LEADER, district)) == {"$and": [{"state": {"$exists": True}}]}


def view(state: str, **fields) -> dict:
    return {"ticket_id": fields.pop("ticket_id", state), "state": state, "lead_unit": "laobao", "assist_units": [],
            "created_at": NOW - timedelta(days=1), "sign_for_due": NOW + timedelta(hours=2),
            "resolve_due": NOW + timedelta(days=3), **fields}


def test_staff_tabs(district):
    staff = Viewer.of(STAFF, district)
    assert in_tab("pending_sign", view("routed"), staff, NOW)
    assert not in_tab("pending_sign", view("routed", lead_unit="sifa", assist_units=["laobao"]), staff, NOW)
    assert in_tab("in_progress", view("routed", lead_unit="sifa", assist_units=["laobao"]), staff, NOW), \
        "an assisting unit's share of a routed ticket is work in progress"
    assert in_tab("in_progress", view("acknowledged"), staff, NOW)
    assert in_tab("resolved", view("closed"), staff, NOW) and in_tab("resolved", view("resolved"), staff, NOW)
    assert in_tab("returned", view("acknowledged", rework_count=1), staff, NOW), "退回重办"
    assert not in_tab("returned", view("acknowledged", returned_by=["laobao"]), staff, NOW)


def test_due_soon_is_the_next_24_hours_and_overdue_what_passed(district):
    staff = Viewer.of(STAFF, district)
    soon = view("acknowledged", resolve_due=NOW + timedelta(hours=23))
    later = view("acknowledged", resolve_due=NOW + timedelta(hours=25))
    passed = view("acknowledged", resolve_due=NOW - timedelta(minutes=1))
    unsigned = view("routed", sign_for_due=NOW - timedelta(minutes=1))
    assert in_tab("due_soon", soon, staff, NOW) and not in_tab("due_soon", later, staff, NOW)
    assert not in_tab("due_soon", passed, staff, NOW) and in_tab("overdue", passed, staff, NOW)
    assert in_tab("overdue", unsigned, staff, NOW), "a missed 签收时限 is overdue too"
    assert not in_tab("overdue", view("resolved", resolve_due=NOW - timedelta(days=1)), staff, NOW), \
        "a resolved ticket is late no more"


def test_dispatcher_callback_and_leader_tabs(district):
    dispatcher, callback, leader = (Viewer.of(account, district) for account in (DISPATCHER, CALLBACK, LEADER))
    assert in_tab("manual", view("manual", lead_unit=""), dispatcher, NOW)
    assert in_tab("returned", view("routed", lead_unit="xixi", returned_by=["laobao"]), dispatcher, NOW)
    assert not in_tab("returned", view("closed", returned_by=["laobao"]), dispatcher, NOW)
    assert in_tab("callback", view("resolved"), callback, NOW) and not in_tab("callback", view("closed"), callback, NOW)
    assert in_tab("extensions", view("acknowledged", pending_extension={"until": NOW}), leader, NOW)
    assert not in_tab("extensions", view("acknowledged", pending_extension=None), leader, NOW)
    assert ROLE_TABS[PersonRole.callback] == ["callback"]


def test_overdue_first_then_by_deadline_and_counts_per_tab(district):
    staff = Viewer.of(STAFF, district)
    views = [view("acknowledged", ticket_id="later", resolve_due=NOW + timedelta(days=2)),
             view("acknowledged", ticket_id="late", resolve_due=NOW - timedelta(hours=1)),
             view("acknowledged", ticket_id="latest", resolve_due=NOW - timedelta(days=2)),
             view("acknowledged", ticket_id="soon", resolve_due=NOW + timedelta(hours=3))]
    assert [item["ticket_id"] for item in ordered("supervision", views, NOW)] == ["latest", "late", "soon", "later"]
    contents = tab_contents(staff, [*views, view("routed", ticket_id="new")], NOW)
    assert list(contents) == ROLE_TABS[PersonRole.staff]
    assert {tab: len(items) for tab, items in contents.items()} == {
        "pending_sign": 1, "in_progress": 4, "due_soon": 1, "overdue": 2, "returned": 0, "resolved": 0}


def test_the_routing_explanation_in_sentences(routed):
    lines = explanation_lines(routed.model_dump(mode="python"))
    assert any(line.startswith("派单规则：") for line in lines)
    assert any(line.startswith("事项分类：劳资纠纷") and "关键词" in line for line in lines), lines


@pytest.mark.parametrize(("head", "expected"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"%PDF-1.7\n%\xe2\xe3", "application/pdf"),
    (b"GIF89a\x01\x00\x01\x00", None),
    (b"<svg xmlns='http://www.w3.org/2000/svg'>", None),
    (b"<html><script>alert(1)</script>", None),
    (b"PNG but only by its name", None),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
    (b"", None),
])
def test_file_types_are_told_by_their_bytes(head: bytes, expected: str | None):
    assert sniff_type(head) == expected


def test_file_names_lose_folders_and_control_characters():
    assert clean_name("C:\\Users\\张三\\现场照片.jpg", "image/jpeg") == "现场照片.jpg"
    assert clean_name("../../etc/passwd\n", "application/pdf") == "passwd"
    assert clean_name("", "image/png") == "附件.png"


async def test_the_filesystem_store_keeps_bytes_by_id_only(tmp_path: Path):
    store = FilesystemStore(tmp_path)
    await store.put("0123456789abcdef0123456789abcdef", b"\x89PNG...")
    assert await store.get("0123456789abcdef0123456789abcdef") == b"\x89PNG..."
    assert await store.get("ffffffffffffffffffffffffffffffff") is None
    with pytest.raises(ValueError):
        await store.get("../../etc/passwd")
    assert not list(tmp_path.rglob("*.partial")), "written under a temporary name, then renamed"


def test_throttling_after_five_failures_in_fifteen_minutes():
    failures = [NOW - timedelta(minutes=minutes) for minutes in (14, 10, 6, 3, 1)]
    assert throttle_wait(failures[1:], NOW) == 0, "four failures: the fifth attempt is still judged"
    assert throttle_wait(failures, NOW) == 60, "until the oldest of the five leaves the 15-minute window"
    assert throttle_wait(failures, NOW + timedelta(minutes=1)) == 0
    assert throttle_wait([NOW - FAILURE_WINDOW - timedelta(seconds=1), *failures[1:]], NOW) == 0, \
        "failures older than the window do not count"
    six = [NOW - timedelta(minutes=minutes) for minutes in (12, 9, 6, 5, 3, 1)]
    assert throttle_wait(six, NOW) == 6 * 60, "with six, the wait ends when the fifth most recent (9 min) leaves"
    assert wait_text(60) == "登录失败次数过多，请 1 分钟后再试" and wait_text(61) == "登录失败次数过多，请 2 分钟后再试"


def test_accounts_are_checked_against_the_district(district):
    assert checked_account(district, "pingan.xu", "徐丽", "dispatcher").unit == "pingan", "the dispatcher unit"
    assert checked_account(district, "laobao.zhang", "张三", "staff", unit="laobao", leader="x").leader == ""
    for username, role, unit, leader in [("laobao.zhang", "staff", "", ""), ("laobao.zhang", "staff", "nowhere", ""),
                                         ("boss", "leader", "", "nobody"), ("pingan.xu", "callback", "laobao", ""),
                                         ("张三", "admin", "", ""), ("a", "admin", "", ""), ("x.y", "chief", "", "")]:
        with pytest.raises(AccountError):
            checked_account(district, username, "某人", role, unit, leader)


def test_passwords_are_long_enough_and_typeable():
    assert check_password("八个字符的密码呀") == "八个字符的密码呀"
    for password in ("short", "x" * 201, "长度足够但是含有\ud800"):
        with pytest.raises(AccountError):
            check_password(password)


def test_what_the_state_machine_is_told_about_a_person():
    assert machine_role(DISPATCHER) == ("unit", "pingan") and machine_role(CALLBACK) == ("unit", "pingan")
    assert machine_role(LEADER) == ("leader", "") and machine_role(ADMIN) == ("admin", "")
    headers = actor_headers(STAFF)
    assert headers["X-Actor-Account"] == "laobao.zhang" and headers["X-Actor-Role"] == "unit"
    assert headers["X-Actor-Name"].isascii() and unquote(headers["X-Actor-Name"]) == "张三"


async def test_commands_go_to_intakes_endpoints_with_the_key_and_the_person():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/supervise"):
            return httpx.Response(403, json={"detail": "无权操作"})
        return httpx.Response(200, json={"status": "applied", "state": "acknowledged"})

    client = IntakeClient("http://intake", "cbk_test", transport=httpx.MockTransport(answer))
    applied = await client.command("SF1", "assign", {"unit": "xixi"}, DISPATCHER, "c-1")
    assert applied.status_code == 200 and seen[0].url.path == "/v1/tickets/SF1/reassign"
    assert seen[0].headers["X-API-Key"] == "cbk_test" and seen[0].headers["Command-Id"] == "c-1"
    assert seen[0].headers["X-Actor-Unit"] == "pingan"
    with pytest.raises(IntakeUnavailable, match="工作台密钥"):
        await client.command("SF1", "supervise", {}, LEADER, "c-2")
    await client.close()


def test_malformed_bodies_are_explained_in_chinese():
    detail = validation_detail([{"loc": ("body", "until"), "type": "datetime_parsing", "msg": "Input should be…"},
                                {"loc": ("body", "note"), "type": "string_too_long", "msg": "…"}])
    assert detail == "请求内容有误：until 应为日期时间；note 过长"
