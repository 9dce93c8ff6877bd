"""The Chinese working calendar (工作日历) in the district's time zone: office hours on working days, statutory
holidays off and the weekend days that become working days (调休) on, as published by the State Council and
packaged by chinese-calendar. Triage counts deadlines on it; reporting counts handling times in working hours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

from civicbus.district import DeadlinesFile, Duration
from civicbus.logs import get_logger
from civicbus.metrics import CALENDAR_HOLIDAYS_KNOWN

log = get_logger(__name__)


class WorkingCalendar:
    def __init__(self, deadlines: DeadlinesFile, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self.opens = deadlines.office_hours.start
        self.closes = deadlines.office_hours.end
        self._extra_holidays = frozenset(deadlines.holidays)
        self._extra_working_days = frozenset(deadlines.working_days)
        self._warned_years: set[int] = set()
        self.is_working_day = lru_cache(maxsize=4096)(self._is_working_day)

    @property
    def office_day(self) -> timedelta:
        return datetime.combine(date.min, self.closes) - datetime.combine(date.min, self.opens)

    def _is_working_day(self, day: date) -> bool:
        if day in self._extra_holidays:
            return False
        if day in self._extra_working_days:
            return True
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            # The year's holidays are not published (or not packaged) yet: count Monday to Friday, say so once.
            if day.year not in self._warned_years:
                self._warned_years.add(day.year)
                log.warning("no holiday calendar for this year; counting Monday-Friday", year=day.year)
            return day.weekday() < 5

    def holidays_known(self, year: int) -> bool:
        """Whether the year's statutory holidays are known: packaged by chinese-calendar, or listed by the district
        in ``deadlines.yaml`` (``holidays``) while the package has not caught up."""
        if any(day.year == year for day in self._extra_holidays):
            return True
        try:
            chinese_calendar.is_workday(date(year, 1, 1))
            return True
        except NotImplementedError:
            return False

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        """The moment when ``amount`` of office time on working days has passed after ``start``."""
        moment = start.astimezone(self.zone)
        remaining = amount
        day = moment.date()
        while True:
            if self.is_working_day(day):
                opens = datetime.combine(day, self.opens, self.zone)
                closes = datetime.combine(day, self.closes, self.zone)
                begin = max(moment, opens)
                if begin < closes:
                    available = closes - begin
                    if remaining <= available:
                        return begin + remaining
                    remaining -= available
            day += timedelta(days=1)
            moment = datetime.combine(day, self.opens, self.zone)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Office time on working days between two moments (for handling times in working hours)."""
        if end <= start:
            return timedelta(0)
        start, end = start.astimezone(self.zone), end.astimezone(self.zone)
        total = timedelta(0)
        day = start.date()
        while day <= end.date():
            if self.is_working_day(day):
                opens = max(start, datetime.combine(day, self.opens, self.zone))
                closes = min(end, datetime.combine(day, self.closes, self.zone))
                if closes > opens:
                    total += closes - opens
            day += timedelta(days=1)
        return total

    def due(self, start: datetime, duration: Duration) -> datetime:
        if duration.hours is not None:
            # Calendar hours: emergencies do not wait for Monday.
            return (start + timedelta(hours=duration.hours)).astimezone(self.zone)
        if duration.working_hours is not None:
            return self.add_working_time(start, timedelta(hours=duration.working_hours))
        assert duration.working_days is not None
        return self.add_working_time(start, self.office_day * duration.working_days)



async def report_holidays_known(calendar: Callable[[], WorkingCalendar], interval: float = 3600.0) -> None:
    """Keep ``civicbus_calendar_holidays_known`` for the current and the next year (in the district's time zone)
    up to date: the State Council publishes the next year's holidays around November, and a calendar that lacks
    them counts deadlines Monday to Friday. Last year's series is dropped when the year turns."""
    while True:
        current = calendar()
        this_year = datetime.now(current.zone).year
        known = {offset: current.holidays_known(this_year + offset) for offset in (0, 1)}
        CALENDAR_HOLIDAYS_KNOWN.metric.clear()
        for offset, value in known.items():
            CALENDAR_HOLIDAYS_KNOWN.labels(str(this_year + offset), str(offset)).set(1 if value else 0)
        await asyncio.sleep(interval)
