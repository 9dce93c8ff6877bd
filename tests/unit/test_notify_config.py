"""Notify's own configuration: notify.yaml and the channels district.yaml names, validated against notify's channel
schemas at start-up, with errors naming the file, the entry and the problem."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from civicbus.district import DistrictConfigError, load_district
from services.notify.channels.robots import DingTalkChannel
from services.notify.channels.sms import SmsChannel
from services.notify.channels.webhook import WebhookChannel
from services.notify.config import load_notify_config

from .test_district_config import SAMPLE, broken, edit_yaml  # noqa: F401 - fixture

T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def load_error(folder: Path) -> str:
    district = load_district(folder)
    with pytest.raises(DistrictConfigError) as caught:
        load_notify_config(district)
    return str(caught.value)


def test_sample_notify_configuration_is_complete():
    notify = load_notify_config(load_district(SAMPLE)).file
    assert notify.escalation is not None and notify.fallback and notify.quiet_hours is not None
    assert notify.escalation.policy_for("safety.gas", "normal").name == "安全隐患升级"


def test_every_recipient_has_its_channels_in_notifys_own_schemas():
    district = load_district(SAMPLE)
    notify = load_notify_config(district)
    assert set(notify.recipient_channels) == {*district.units, *district.leaders}
    (robot,) = notify.channels_of("wangjianguo")
    assert isinstance(robot, WebhookChannel) and robot.url.endswith("/leader/wangjianguo")
    unit = district.units["dangzheng"]
    own, personal = unit.channels, [ref for contact in unit.contacts for ref in contact.channels]
    assert [channel.type for channel in notify.channels_of("dangzheng")] == [ref.type for ref in [*own, *personal]]
    with pytest.raises(KeyError, match="neither a unit nor a leader"):
        notify.channels_of("nobody")


def test_a_contacts_personal_channel_is_validated_with_its_entry(broken: Path):  # noqa: F811
    edit_yaml(broken / "district.yaml",
              lambda data: data["units"][0]["contacts"][0].update(channels=[{"type": "sms", "phones": ["110"]}]))
    error = load_error(broken)
    assert "district.yaml: units[0] (dangzheng).contacts[0] (林晓燕).channels[0].sms.phones[0]:" in error
    assert "should match pattern" in error


def test_a_robot_channel_of_unknown_type_is_refused_with_the_entry(broken: Path):  # noqa: F811
    edit_yaml(broken / "district.yaml",
              lambda data: data["units"][0].update(channels=[{"type": "telegram", "url": "https://x"}]))
    load_district(broken)  # the kernel knows no channel but by its type: notify alone refuses it
    error = load_error(broken)
    assert "district.yaml" in error and "units[0] (dangzheng).channels[0]" in error and "'telegram'" in error


def test_a_leaders_robot_without_its_url_is_refused_with_the_entry(broken: Path):  # noqa: F811
    edit_yaml(broken / "district.yaml", lambda data: data["leaders"][1].update(channels=[{"type": "dingtalk"}]))
    error = load_error(broken)
    assert "district.yaml: leaders[1] (chenlixin).channels[0].dingtalk.url: Field required" in error


def test_email_channel_without_smtp_server_is_refused(broken: Path):  # noqa: F811
    edit_yaml(broken / "notify.yaml", lambda data: data.pop("smtp"))
    edit_yaml(broken / "district.yaml",
              lambda data: data["units"][0]["contacts"][0].update(channels=[{"type": "email", "to": ["a@b.cn"]}]))
    error = load_error(broken)
    assert "notify.yaml: smtp:" in error
    assert "district.yaml units[0] (dangzheng).contacts[0] (林晓燕).channels[0] is an e-mail channel" in error


def test_sms_fallback_without_gateway_is_refused(broken: Path):  # noqa: F811
    def change(data: dict) -> None:
        data.pop("sms_gateway")
        data["fallback"].append({"type": "sms", "phones": ["13800000000"]})

    edit_yaml(broken / "notify.yaml", change)
    assert "notify.yaml: sms_gateway: fallback[1] is an SMS channel, but no SMS gateway" in load_error(broken)


def test_unknown_escalation_policy_and_category_are_named(broken: Path):  # noqa: F811
    edit_yaml(broken / "notify.yaml", lambda data: data["escalation"]["rules"].append({"policy": "nope"}))
    assert "rules[2]: unknown escalation policy 'nope'" in load_error(broken)
    edit_yaml(broken / "notify.yaml", lambda data: data["escalation"]["rules"].__setitem__(
        2, {"category": "no.such", "policy": "standard"}))
    assert "notify.yaml: escalation.rules[2]: 'no.such' is not a category of categories.yaml" in load_error(broken)


def test_without_notify_yaml_the_defaults_apply(broken: Path):  # noqa: F811
    (broken / "notify.yaml").unlink()
    edit_yaml(broken / "district.yaml", lambda data: [unit.update(contacts=[]) for unit in data["units"]])
    notify = load_notify_config(load_district(broken)).file
    assert notify.escalation is None and notify.fallback == [] and notify.reminders.at_fractions == [0.8]


def test_notify_does_not_start_with_a_broken_channel(broken: Path):  # noqa: F811
    from services.notify.app import create_app
    from services.notify.settings import NotifySettings

    edit_yaml(broken / "district.yaml", lambda data: data["units"][0].update(channels=[{"type": "wecom"}]))
    with pytest.raises(DistrictConfigError, match=r"units\[0\] \(dangzheng\)\.channels\[0\]\.wecom\.url"):
        create_app(NotifySettings(config_dir=broken))


def test_a_missed_deadline_no_escalation_step_tells_goes_to_the_unit_from_triages_event(broken: Path):  # noqa: F811
    from civicbus.events import (
        CategoryEvidence,
        EventKind,
        LocationEvidence,
        RoutingExplanation,
        Severity,
        Ticket,
        TicketEvent,
        TicketState,
    )
    from services.notify.recipients import recipients

    def only_sign_for(data: dict) -> None:
        for policy in data["escalation"]["policies"].values():
            policy["deadlines"] = ["sign_for"]

    edit_yaml(broken / "notify.yaml", only_sign_for)
    district = load_district(broken)
    notify = load_notify_config(district)
    ticket = Ticket(ticket_id="SF1", version=3, state=TicketState.acknowledged, event_kind=EventKind.complaint_received,
                    event_source="12345", source_event_id="e1", title="拖欠工资", content="拖欠工资",
                    severity=Severity.normal,
                    category="labor.wage_arrears", category_name="劳资纠纷/欠薪", lead_unit="laobao", created_at=T0,
                    explanation=RoutingExplanation(route_path=["默认"], category=CategoryEvidence(method="none",
                                                   confidence=0), location=LocationEvidence(method="none")))

    def overdue(deadline: str) -> TicketEvent:
        return TicketEvent(kind=EventKind.ticket_overdue, source="civicbus.triage", ticket=ticket, deadline=deadline)

    assert recipients(overdue("resolve"), district, notify) == [("laobao", "lead")], "no escalation policy covers 办结"
    assert recipients(overdue("sign_for"), district, notify) == [], "step 1 of the policy tells the unit of 签收"


def test_channel_settings_keep_their_defaults():
    """The robots' rate limits are the vendors' (DingTalk bans a robot past 20 a minute)."""
    assert DingTalkChannel(type="dingtalk", url="https://oapi.dingtalk.com/robot/send").rate_per_minute == 20
    assert SmsChannel(type="sms", phones=["13800000000"]).rate_per_minute is None
