"""Reporting periods: boundaries, Chinese labels, the previous period."""

from datetime import date

import pytest

from services.reporting.report import Period, ReportError


@pytest.mark.parametrize(("kind", "since", "until", "label", "previous"), [
    ("day", date(2026, 11, 25), date(2026, 11, 25), "2026年11月25日", (date(2026, 11, 24), date(2026, 11, 24))),
    ("week", date(2026, 11, 23), date(2026, 11, 29), "2026年第48周", (date(2026, 11, 16), date(2026, 11, 22))),
    ("month", date(2026, 11, 1), date(2026, 11, 30), "2026年11月", (date(2026, 10, 1), date(2026, 10, 31))),
    ("quarter", date(2026, 10, 1), date(2026, 12, 31), "2026年第4季度", (date(2026, 7, 1), date(2026, 9, 30))),
])
def test_the_period_holding_a_day(kind, since, until, label, previous):
    period = Period.parse(kind, date(2026, 11, 25))
    assert (period.since, period.until, period.label) == (since, until, label)
    assert (period.previous().since, period.previous().until) == previous


def test_week_labels_use_the_iso_year_and_january_wraps_to_december():
    assert Period.parse("week", date(2027, 1, 1)).label == "2026年第53周"
    assert Period.parse("month", date(2027, 1, 15)).previous().label == "2026年12月"
    assert Period.parse("quarter", date(2027, 2, 1)).previous().label == "2026年第4季度"


def test_a_custom_period_and_its_previous_of_the_same_length():
    period = Period.parse("custom", since=date(2026, 11, 1), until=date(2026, 11, 10))
    assert period.label == "2026年11月1日至2026年11月10日" and period.days == 10
    assert (period.previous().since, period.previous().until) == (date(2026, 10, 22), date(2026, 10, 31))


def test_today_is_the_default_and_bad_periods_are_explained():
    assert Period.parse("day", today=date(2026, 3, 8)).since == date(2026, 3, 8)
    with pytest.raises(ReportError, match="since"):
        Period.parse("custom", since=date(2026, 11, 1))
    with pytest.raises(ReportError, match="晚于"):
        Period.parse("custom", since=date(2026, 11, 2), until=date(2026, 11, 1))
