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
from lunardate import LunarDate

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
        in ``deadlines.yaml`` (``holidays``) while the package has not caught up — every festival's own day, at
        least: a year listed in part (元旦 alone) still counts its Spring Festival as working days."""
        return not self.missing_festivals(year)

    def missing_festivals(self, year: int) -> list[tuple[date, str]]:
        """The festivals of ``year`` whose days off nobody has said: none if chinese-calendar knows the year."""
        try:
            chinese_calendar.is_workday(date(year, 1, 1))
            return []
        except NotImplementedError:
            return [(day, name) for day, name in festivals(year) if day not in self._extra_holidays]

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



def festivals(year: int) -> list[tuple[date, str]]:
    """The days the statutory holidays of ``year`` are built around (节日当天): the State Council's notice sets the
    days off around each (and the 调休 working days) every winter; these anchor days say where to look."""
    qingming = chinese_calendar.get_solar_terms(date(year, 4, 1), date(year, 4, 10))
    return sorted([
        (date(year, 1, 1), "元旦"),
        (LunarDate(year, 1, 1).to_solar_date(), "春节"),
        *((day, "清明节") for day, name in qingming if name == "清明"),
        (date(year, 5, 1), "劳动节"),
        (LunarDate(year, 5, 5).to_solar_date(), "端午节"),
        (LunarDate(year, 8, 15).to_solar_date(), "中秋节"),
        (date(year, 10, 1), "国庆节"),
    ])


def calendar_gaps(calendar: WorkingCalendar, years: list[int]) -> dict[int, list[tuple[date, str]]]:
    """For each of ``years`` whose holidays nobody knows in full (chinese-calendar nor ``deadlines.yaml``), the
    festivals whose days off the configuration must add."""
    return {year: missing for year in years if (missing := calendar.missing_festivals(year))}


def calendar_notes(calendar: WorkingCalendar, today: date) -> dict[str, str]:
    """What /readyz says of the calendar (a note, not a failure: deadlines still count, Monday to Friday)."""
    missing = sorted(calendar_gaps(calendar, [today.year, today.year + 1]))
    if not missing:
        return {}
    years = "、".join(str(year) for year in missing)
    return {"calendar": f"{years} 年无法定节假日数据，时限按周一至周五计算；请在 deadlines.yaml 补充 holidays 与 "
                        f"working_days（civicbus calendar check） (no holiday data for {years}: deadlines count "
                        f"Monday to Friday; add them to deadlines.yaml)"}


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
