"""Notify's time arithmetic: reminders, escalation steps, quiet hours, the rate limit, retry delays (notify.yaml's
checks: test_notify_config.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from civicbus.scheduling import minutes_between
from services.notify.config import Escalation, EscalationPolicy, QuietHours
from services.notify.schedule import (
    RateLimiter,
    escalation_steps,
    overdue_text,
    quiet_until,
    reminder_times,
    retry_delay,
)

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
