"""Notify's time arithmetic: reminders, escalation steps, quiet hours, the rate limit, retry delays; and notify.yaml's
checks."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from civicbus.district import Escalation, EscalationPolicy, QuietHours, load_district
from civicbus.scheduling import minutes_between
from services.notify.schedule import (
    RateLimiter,
    escalation_steps,
    overdue_text,
    quiet_until,
    reminder_times,
    retry_delay,
)

from .test_district_config import SAMPLE, broken, edit_yaml, load_error  # noqa: F401 - fixture

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def local(hour: int, minute: int = 0, day: int = 25) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def test_reminder_at_eighty_percent_of_the_time_allowed():
    assert reminder_times(T0, T0 + timedelta(hours=10), [0.5, 0.8]) == [
        (0.5, T0 + timedelta(hours=5)), (0.8, T0 + timedelta(hours=8))]
    assert reminder_times(T0, T0 - timedelta(minutes=1), [0.8]) == []  # set after it was due: no reminder


def test_escalation_steps_in_order_and_brought_forward_under_heightened_response():
    policy = EscalationPolicy(name="常规", steps=[
        {"after_minutes": 0, "notify": ["unit"]},
        {"after_minutes": 120, "notify": ["leader_in_charge"]},
        {"after_minutes": 480, "notify": ["main_leaders"]},
    ])
    normal = escalation_steps(T0, policy, 1.0)
    assert [(step.number, step.at - T0, step.targets) for step in normal] == [
        (1, timedelta(0), ("unit",)), (2, timedelta(hours=2), ("leader_in_charge",)),
        (3, timedelta(hours=8), ("main_leaders",))]
    heightened = escalation_steps(T0, policy, 0.5)
    assert [step.at - T0 for step in heightened] == [timedelta(0), timedelta(hours=1), timedelta(hours=4)]


def test_escalation_steps_must_be_in_order():
    with pytest.raises(ValueError, match="order"):
        EscalationPolicy(name="x", steps=[{"after_minutes": 60, "notify": ["unit"]},
                                          {"after_minutes": 30, "notify": ["main_leaders"]}])


def test_policy_chosen_by_category_ancestor_and_response_level():
    escalation = Escalation(default_policy="standard", rules=[
        {"category": "safety", "policy": "fast"},
        {"response_level": "heightened", "policy": "fast"},
    ], policies={
        "standard": {"name": "常规", "steps": [{"after_minutes": 0, "notify": ["unit"]}]},
        "fast": {"name": "快速", "steps": [{"after_minutes": 0, "notify": ["unit"]}]},
    })
    assert escalation.policy_for("safety.fire", "normal").name == "快速"
    assert escalation.policy_for("safetyx", "normal").name == "常规"  # a prefix of the code is not an ancestor
    assert escalation.policy_for("labor.wage", "heightened").name == "快速"
    assert escalation.policy_for("labor.wage", "normal").name == "常规"


def test_quiet_hours_across_midnight():
    quiet = QuietHours(start=time(22, 0), end=time(7, 30))
    assert quiet_until(local(21, 59), quiet, SHANGHAI) is None
    assert quiet_until(local(22, 0), quiet, SHANGHAI) == local(7, 30, day=26)
    assert quiet_until(local(3, 15), quiet, SHANGHAI) == local(7, 30)
    assert quiet_until(local(7, 30), quiet, SHANGHAI) is None
    assert quiet_until(local(3, 15), QuietHours(enabled=False), SHANGHAI) is None
    assert quiet_until(local(3, 15), None, SHANGHAI) is None


def test_quiet_hours_within_one_day():
    quiet = QuietHours(start=time(12, 0), end=time(14, 0))
    assert quiet_until(local(12, 30), quiet, SHANGHAI) == local(14, 0)
    assert quiet_until(local(23, 0), quiet, SHANGHAI) is None


def test_rate_limiter_allows_twenty_a_minute_and_counts_the_previous_minute_by_its_share_in_the_window():
    limiter = RateLimiter()
    sent = [limiter.acquire("ding", 20, T0 + timedelta(seconds=second)) for second in range(25)]
    assert sent == [True] * 20 + [False] * 5
    assert limiter.free_at(T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=90)
    # One minute on, the 20 sends of the previous minute still count whole; half a minute on, half of them.
    assert not limiter.acquire("ding", 20, T0 + timedelta(seconds=60))
    assert [limiter.acquire("ding", 20, T0 + timedelta(seconds=90)) for _ in range(11)] == [True] * 10 + [False]
    assert limiter.acquire("other", 20, T0)  # each channel has its own window
    assert all(limiter.acquire("mail", None, T0) for _ in range(100))  # no limit configured
    assert limiter.take_added() == {"ding": {"m202611250100": 20, "m202611250101": 10}, "other": {"m202611250100": 1}}
    assert limiter.take_added() == {}


def test_the_rate_limit_sums_what_every_partition_stored():
    limiter = RateLimiter()
    limiter.load("ding", [{"_id": "rate:ding|0", "m202611250100": 11, "m202611250040": 3},
                          {"_id": "rate:ding|4", "m202611250100": 7}])
    assert [limiter.acquire("ding", 20, T0 + timedelta(seconds=10)) for _ in range(3)] == [True, True, False]
    assert limiter.expired("ding", T0 + timedelta(seconds=10)) == ["m202611250040"]
    assert limiter.take_added() == {"ding": {"m202611250100": 2}}


def test_retry_delays_double_up_to_the_cap_with_at_least_half_of_each_backoff():
    shortest = [retry_delay(made, 30, 600, draw=lambda: 0.0).total_seconds() for made in range(1, 8)]
    longest = [retry_delay(made, 30, 600, draw=lambda: 1.0).total_seconds() for made in range(1, 8)]
    assert longest == [30, 60, 120, 240, 480, 600, 600]
    assert shortest == [value / 2 for value in longest]
    assert 15 <= retry_delay(1, 30, 600).total_seconds() <= 30  # the real draw stays within the bounds


def test_minute_buckets_and_overdue_text():
    assert minutes_between(T0 + timedelta(seconds=59), T0 + timedelta(minutes=2)) == [
        "202611250100", "202611250101", "202611250102"]
    assert overdue_text(95) == "1小时35分钟" and overdue_text(120) == "2小时" and overdue_text(30) == "30分钟"


# --------------------------------------------------------------------------- notify.yaml checks


def test_sample_notify_configuration_is_complete():
    notify = load_district(SAMPLE).notify
    assert notify.escalation is not None and notify.fallback and notify.quiet_hours is not None
    assert notify.escalation.policy_for("safety.gas", "normal").name == "安全隐患升级"


def test_email_channel_without_smtp_server_is_refused(broken: Path):  # noqa: F811
    edit_yaml(broken / "notify.yaml", lambda data: data.pop("smtp"))
    edit_yaml(broken / "district.yaml",
              lambda data: data["units"][0]["contacts"][0].update(channels=[{"type": "email", "to": ["a@b.cn"]}]))
    error = load_error(broken)
    assert "notify.yaml: smtp:" in error and "units (dangzheng) contact 林晓燕 has an e-mail channel" in error


def test_unknown_escalation_policy_and_category_are_named(broken: Path):  # noqa: F811
    edit_yaml(broken / "notify.yaml", lambda data: data["escalation"]["rules"].append({"policy": "nope"}))
    assert "rules[2]: unknown escalation policy 'nope'" in load_error(broken)
    edit_yaml(broken / "notify.yaml", lambda data: data["escalation"]["rules"].__setitem__(
        2, {"category": "no.such", "policy": "standard"}))
    assert "escalation.rules[2]: category 'no.such' is not in categories.yaml" in load_error(broken)


def test_a_robot_channel_of_unknown_type_is_refused_with_the_entry(broken: Path):  # noqa: F811
    edit_yaml(broken / "district.yaml",
              lambda data: data["units"][0].update(channels=[{"type": "telegram", "url": "https://x"}]))
    error = load_error(broken)
    assert "district.yaml" in error and "units[0] (dangzheng).channels[0]" in error


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
    ticket = Ticket(ticket_id="SF1", version=3, state=TicketState.acknowledged, event_kind=EventKind.complaint_received,
                    event_source="12345", source_event_id="e1", title="拖欠工资", content="拖欠工资",
                    severity=Severity.normal,
                    category="labor.wage_arrears", category_name="劳资纠纷/欠薪", lead_unit="laobao", created_at=T0,
                    explanation=RoutingExplanation(route_path=["默认"], category=CategoryEvidence(method="none",
                                                   confidence=0), location=LocationEvidence(method="none")))

    def overdue(deadline: str) -> TicketEvent:
        return TicketEvent(kind=EventKind.ticket_overdue, source="civicbus.triage", ticket=ticket, deadline=deadline)

    assert recipients(overdue("resolve"), district) == [("laobao", "lead")], "no escalation policy covers 办结"
    assert recipients(overdue("sign_for"), district) == [], "step 1 of the policy tells the unit of 签收"
