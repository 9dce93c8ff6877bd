"""Every message links to the workbench (issue #11): a ticket's message to its page, built from the configured public
base URL and carrying the ticket's id alone; a digest or a summary to the workbench; 签收 on the button where the
message asks the unit to sign for the ticket. The link survives a retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from civicbus.district import load_district
from civicbus.events import (
    CategoryEvidence,
    EventKind,
    LocationEvidence,
    RoutingExplanation,
    Severity,
    Ticket,
    TicketState,
)
from civicbus.settings import DEFAULT_CONFIG_DIR
from services.notify.channels.webhook import WebhookChannel
from services.notify.delivery import Delivery, DeliveryPipeline
from services.notify.in_force import InForce
from services.notify.messages import Message, MessageRenderer
from services.notify.settings import NotifySettings

DISTRICT = load_district(DEFAULT_CONFIG_DIR)
BASE = "https://gd.shifan.example.gov.cn"
RENDERER = MessageRenderer(DISTRICT, BASE)
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
PHONE, ID_NUMBER = "13912345678", "330102199001011234"


def ticket(**fields) -> Ticket:
    values = dict(
        ticket_id="SF20261125000001", state=TicketState.routed, event_kind=EventKind.complaint_received,
        event_source="12345", source_event_id="e-1", title="拖欠工资",
        content=f"公司拖欠工资三个月，联系电话{PHONE}，身份证号{ID_NUMBER}", caller_phone=PHONE,
        severity=Severity.normal, category="labor", category_name="劳动保障", lead_unit="laobao",
        leader="zhengxiuying", sign_for_due=T0 + timedelta(hours=1), resolve_due=T0 + timedelta(days=5), created_at=T0,
        explanation=RoutingExplanation(route_path=["默认"], category=CategoryEvidence(method="none", confidence=0),
                                       location=LocationEvidence(method="none")),
    )
    return Ticket(**(values | fields))


def test_a_new_ticket_links_its_lead_unit_to_the_page_where_it_signs_for_it():
    message = RENDERER.render_ticket(ticket(), EventKind.ticket_routed, "lead")
    assert message.url == f"{BASE}/workbench/tickets/SF20261125000001" and message.button == "签收"


def test_the_link_carries_the_ticket_id_and_nothing_personal():
    message = RENDERER.render_ticket(ticket(), EventKind.ticket_routed, "lead")
    assert "?" not in message.url and "#" not in message.url
    assert PHONE not in message.url and ID_NUMBER not in message.url and "139" not in message.url


def test_assisting_units_leaders_and_a_signed_ticket_get_a_view_button():
    assert RENDERER.render_ticket(ticket(), EventKind.ticket_routed, "assist").button == "查看"
    assert RENDERER.render_ticket(ticket(), EventKind.ticket_escalated, "leader_in_charge", deadline="sign_for",
                                  due=T0, step=2, policy_name="常规升级", overdue_text="2小时").button == "查看"
    signed = ticket(state=TicketState.acknowledged)
    assert RENDERER.render_ticket(signed, EventKind.ticket_supervised, "lead").button == "查看"
    assert RENDERER.render_ticket(signed, EventKind.ticket_supervised, "lead").url.endswith("/SF20261125000001")


def test_a_reminder_of_the_sign_for_deadline_asks_to_sign():
    reminder = RENDERER.render_ticket(ticket(), EventKind.ticket_reminder, "lead", deadline="sign_for",
                                      due=T0 + timedelta(hours=1))
    assert reminder.button == "签收"


def test_an_odd_ticket_id_is_quoted_into_one_path_segment():
    message = RENDERER.render_ticket(ticket(ticket_id="OPS/1 #2?"), EventKind.ticket_routed, "lead")
    assert message.url == f"{BASE}/workbench/tickets/OPS%2F1%20%232%3F"


def test_digests_and_the_daily_summary_link_to_the_workbench():
    assert RENDERER.render_digest(["【新工单】拖欠工资（SF1）"], "免打扰时段暂存的消息", T0).url == f"{BASE}/workbench"
    leader = DISTRICT.leaders["zhengxiuying"]
    assert RENDERER.render_daily(leader, [ticket()], T0, max_listed=5).url == f"{BASE}/workbench"


def test_a_fallback_keeps_the_failed_messages_link():
    failed = RENDERER.render_ticket(ticket(), EventKind.ticket_routed, "lead")
    assert RENDERER.render_fallback(failed, "laobao", "HTTP 500").url == failed.url


def test_the_public_base_url_is_a_setting_of_notify(monkeypatch: pytest.MonkeyPatch):
    assert NotifySettings().public_base_url == "http://127.0.0.1:8084"
    monkeypatch.setenv("CIVICBUS_PUBLIC_BASE_URL", "https://12345.shifan.gov.cn/")
    assert NotifySettings().public_base_url == "https://12345.shifan.gov.cn", "no trailing slash to double"
    monkeypatch.setenv("CIVICBUS_PUBLIC_BASE_URL", "javascript:alert(1)")
    with pytest.raises(ValidationError, match="http"):
        NotifySettings()


def _retrying(message: Message) -> Delivery:
    return Delivery(key="e1:laobao:webhook-x", ticket_id="SF20261125000001", ticket_event_id="e1",
                    correlation_id="c1", transition=EventKind.ticket_routed, recipient="laobao", role="lead",
                    channel=WebhookChannel(url="http://127.0.0.1:1/robot"), message=message, status="retrying")


def test_a_retry_sends_the_same_link_and_button():
    message = RENDERER.render_ticket(ticket(), EventKind.ticket_routed, "lead")
    delivery = _retrying(message)
    document = {"ticket_id": delivery.ticket_id, "ticket_event_id": "e1", "transition": "ticket.routed",
                "recipient": "laobao", "role": "lead", "attempts": [{}], "retry": delivery.retry_state()}
    pipeline = SimpleNamespace(_in_force=InForce(DISTRICT, "https://elsewhere.example"))
    assert DeliveryPipeline._rebuild(pipeline, delivery.key, document).message == message


def test_a_retry_filed_before_messages_had_links_links_to_its_ticket():
    state = _retrying(Message("【新工单】拖欠工资", "…", "")).retry_state()
    del state["url"], state["button"]
    document = {"ticket_id": "SF20261125000001", "ticket_event_id": "e1", "transition": "ticket.routed",
                "recipient": "laobao", "role": "lead", "attempts": [{}], "retry": state}
    rebuilt = DeliveryPipeline._rebuild(SimpleNamespace(_in_force=InForce(DISTRICT, BASE)), "k", document)
    assert rebuilt.message.url == f"{BASE}/workbench/tickets/SF20261125000001" and rebuilt.message.button == "查看"
