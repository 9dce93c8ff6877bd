"""Deadlines (时限) on the Chinese working calendar, in the district's time zone.

Working time is office hours on working days: statutory holidays are off and the weekend days that become working
days (调休) are on, as published by the State Council and packaged by chinese-calendar. ``N working days`` is N
office days of working time from the moment the ticket is created: created on Friday at 10:00 with one working
day, due on Monday at 10:00; created on a Sunday, due at the close of the next working day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from civicbus.district import DeadlinePolicy, DeadlinesFile
from civicbus.events import Severity
from civicbus.workcalendar import WorkingCalendar

__all__ = ["Deadlines", "WorkingCalendar", "choose_policy", "compute_deadlines"]


@dataclass(frozen=True)
class Deadlines:
    sign_for_due: datetime
    resolve_due: datetime


def choose_policy(deadlines: DeadlinesFile, route_policy: str | None, severity: Severity) -> str:
    """A severity policy (critical → emergency) overrides the route's, which overrides the default."""
    return deadlines.severity_policies.get(str(severity)) or route_policy or deadlines.default_policy


def compute_deadlines(
    calendar: WorkingCalendar, policy: DeadlinePolicy, created_at: datetime, factor: float = 1.0
) -> Deadlines:
    """``factor`` < 1 shortens both deadlines (the heightened response level)."""
    return Deadlines(
        sign_for_due=calendar.due(created_at, policy.sign_for.scaled(factor)),
        resolve_due=calendar.due(created_at, policy.resolve.scaled(factor)),
    )
