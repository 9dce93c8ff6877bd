"""Deadlines on the Chinese working calendar (Asia/Shanghai), across National Day and Spring Festival 2026."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from civicbus.district import DeadlinesFile, Duration
from civicbus.events import Severity
from services.triage.deadlines import WorkingCalendar, choose_policy

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def calendar(district) -> WorkingCalendar:
    return WorkingCalendar(district.deadlines, "Asia/Shanghai")


def test_one_working_day_from_friday_is_monday(calendar):
    # 2026-11-20 is an ordinary Friday.
    assert calendar.due(at(2026, 11, 20), Duration(working_days=1)) == at(2026, 11, 23)


def test_national_day_holiday_is_skipped_and_the_adjusted_saturday_counts(calendar):
    # Wed 30 Sep 10:00 + 1 working day: 1-7 Oct off (8 Oct Thu is the next working day).
    assert calendar.due(at(2026, 9, 30), Duration(working_days=1)) == at(2026, 10, 8)
    # Fri 9 Oct + 1 working day: Saturday 10 Oct is a 调休 working day.
    assert calendar.due(at(2026, 10, 9), Duration(working_days=1)) == at(2026, 10, 10)
    # Sunday 20 Sep is a working day too; Mid-autumn (Fri 25 Sep) is not.
    assert calendar.is_working_day(date(2026, 9, 20))
    assert not calendar.is_working_day(date(2026, 9, 25))


def test_spring_festival_holiday_with_its_two_working_saturdays(calendar):
    # Sat 14 Feb 2026 is a working day; 16-23 Feb are off.
    assert calendar.due(at(2026, 2, 13), Duration(working_days=1)) == at(2026, 2, 14)
    assert calendar.due(at(2026, 2, 14), Duration(working_days=1)) == at(2026, 2, 24)
    assert calendar.is_working_day(date(2026, 2, 28))
    assert calendar.due(at(2026, 2, 27), Duration(working_days=1)) == at(2026, 2, 28)


def test_working_hours_stop_at_closing_time_and_resume_next_working_morning(calendar):
    # 4 working hours from 16:00 on Fri 20 Nov: 1.5 h on Friday (to 17:30), 2.5 h from 08:30 on Monday.
    assert calendar.due(at(2026, 11, 20, 16), Duration(working_hours=4)) == at(2026, 11, 23, 11)


def test_an_event_on_a_holiday_counts_from_the_next_working_morning(calendar):
    assert calendar.due(at(2026, 10, 3, 22), Duration(working_hours=2)) == at(2026, 10, 8, 10, 30)


def test_calendar_hours_run_round_the_clock(calendar):
    assert calendar.due(at(2026, 10, 1, 23), Duration(hours=2)) == at(2026, 10, 2, 1)


def test_working_time_between_skips_nights_weekends_and_holidays(calendar):
    assert calendar.working_time_between(at(2026, 9, 30, 16), at(2026, 10, 8, 10)) == timedelta(hours=3)


def test_years_without_published_holidays_fall_back_to_weekdays_and_listed_days(district):
    deadlines = DeadlinesFile.model_validate(
        {**district.deadlines.model_dump(), "holidays": [date(2027, 1, 1)], "working_days": [date(2027, 1, 9)]}
    )
    calendar = WorkingCalendar(deadlines, "Asia/Shanghai")
    assert not calendar.is_working_day(date(2027, 1, 1))  # listed holiday (a Friday)
    assert calendar.is_working_day(date(2027, 1, 9))  # listed 调休 Saturday
    assert calendar.is_working_day(date(2027, 1, 4))  # an ordinary Monday
    assert not calendar.is_working_day(date(2027, 1, 10))  # an ordinary Sunday


def test_critical_severity_overrides_the_route_policy(district):
    assert choose_policy(district.deadlines, "complaint", Severity.critical) == "emergency"
    assert choose_policy(district.deadlines, "inspection", Severity.normal) == "inspection"
    assert choose_policy(district.deadlines, None, Severity.normal) == district.deadlines.default_policy


def test_heightened_response_halves_the_deadlines(district, calendar):
    from civicbus.events import Complaint, ComplaintReceived, ResponseLevel
    from services.triage.decide import TriageEngine

    engine = TriageEngine(district)
    event = ComplaintReceived(source="12345", recorded_at=at(2026, 11, 23, 9),  # a Monday, 09:00
                              data=Complaint(content="老板拖欠工资两个月", address="南塘老街"))
    (normal,) = [t for t in engine.decide(event).tickets if t.lead_unit == "laobao"]
    (heightened,) = [t for t in engine.decide(event, ResponseLevel.heightened).tickets if t.lead_unit == "laobao"]
    assert heightened.response_level is ResponseLevel.heightened
    assert normal.response_level is ResponseLevel.normal
    # complaint policy: sign for in 4 working hours, resolve in 5 working days; heightened: 2 hours, 2.5 days.
    assert normal.sign_for_due == at(2026, 11, 23, 13)
    assert heightened.sign_for_due == at(2026, 11, 23, 11)
    assert normal.resolve_due == at(2026, 11, 30, 9)
    assert heightened.resolve_due == at(2026, 11, 25, 13, 30)
