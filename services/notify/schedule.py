"""Pure time arithmetic of notify: reminders, escalation steps, quiet hours, the rate limit and retry delays."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from civicbus.scheduling import minute_id

from .config import EscalationPolicy, QuietHours


def reminder_times(start: datetime, due: datetime, fractions: list[float]) -> list[tuple[float, datetime]]:
    """When ``fraction`` of the time from ``start`` (the deadline was set) to ``due`` has passed."""
    span = due - start
    if span <= timedelta(0):
        return []
    return [(fraction, start + span * fraction) for fraction in fractions]


@dataclass(frozen=True)
class PlannedStep:
    number: int  # 1-based, as staff read it (第1级)
    at: datetime
    targets: tuple[str, ...]


def escalation_steps(due: datetime, policy: EscalationPolicy, factor: float) -> list[PlannedStep]:
    """The policy's steps after a missed deadline; under 一级响应 ``factor`` (< 1) brings every step forward."""
    return [
        PlannedStep(number, due + timedelta(minutes=step.after_minutes * factor), tuple(step.notify))
        for number, step in enumerate(policy.steps, start=1)
    ]


def quiet_until(moment: datetime, quiet: QuietHours | None, zone: ZoneInfo) -> datetime | None:
    """If ``moment`` is within quiet hours, when they end (UTC); otherwise None. Quiet hours may span midnight."""
    if quiet is None or not quiet.enabled:
        return None
    local = moment.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= clock < quiet.end
        end_day = local.date()
    else:  # e.g. 22:00 → 07:30
        inside = clock >= quiet.start or clock < quiet.end
        end_day = local.date() + timedelta(days=1) if clock >= quiet.start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, quiet.end, tzinfo=zone).astimezone(UTC)


def overdue_text(minutes: float) -> str:
    """``95`` → ``1小时35分钟``: how long a deadline has been missed, as staff say it."""
    hours, rest = divmod(int(round(minutes)), 60)
    if hours and rest:
        return f"{hours}小时{rest}分钟"
    return f"{hours}小时" if hours else f"{rest}分钟"


class RateLimiter:
    """At most ``limit`` messages per channel in any 60 seconds, estimated from per-minute counts (a sliding window
    counter: this minute's sends plus the share of the previous minute's that is still inside the window). Counts
    are per channel and minute so that the pipeline can keep them in MongoDB: each partition's sends in its own
    document, all of them loaded and summed before a batch's sends and the new ones stored after, so that a restart
    or another replica sees them (``DeliveryPipeline._load_rates``)."""

    WINDOW = timedelta(minutes=1)

    def __init__(self) -> None:
        self._counts: dict[str, dict[str, int]] = defaultdict(dict)  # channel → {"m<minute id>": sends}
        self._added: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    @staticmethod
    def field(moment: datetime) -> str:
        return f"m{minute_id(moment)}"

    def load(self, channel: str, stored: Iterable[Mapping[str, Any]]) -> None:
        """Take the stored counts of ``channel`` as they are now: one document per writer (partition), summed."""
        counts: dict[str, int] = defaultdict(int)
        for document in stored:
            for name, count in document.items():
                if name.startswith("m"):
                    counts[name] += int(count)
        self._counts[channel] = dict(counts)

    def acquire(self, channel: str, limit: int | None, now: datetime) -> bool:
        if limit is None:
            return True
        counts = self._counts[channel]
        minute, previous = self.field(now), self.field(now - self.WINDOW)
        still_inside = 1 - (now.second + now.microsecond / 1_000_000) / 60
        if counts.get(minute, 0) + counts.get(previous, 0) * still_inside + 1 > limit:
            return False
        counts[minute] = counts.get(minute, 0) + 1
        self._added[channel][minute] += 1
        return True

    def free_at(self, now: datetime) -> datetime:
        """When the sends counted now have left the window."""
        return now + self.WINDOW

    def take_added(self) -> dict[str, dict[str, int]]:
        """The sends acquired since the last call, per channel and minute field, to store."""
        added = {channel: dict(minutes) for channel, minutes in self._added.items()}
        self._added.clear()
        return added

    def expired(self, channel: str, now: datetime) -> list[str]:
        """The minute fields of ``channel`` older than the window needs: to remove from the stored document."""
        oldest = self.field(now - self.WINDOW)
        return sorted(name for name in self._counts[channel] if name < oldest)


def retry_delay(attempts_made: int, base_s: float, max_s: float,
                draw: Callable[[], float] = random.random) -> timedelta:
    """How long to wait before the next attempt after ``attempts_made`` failed ones: exponential backoff (``base_s``,
    doubling, at most ``max_s``) with "equal jitter" — between half and all of it, so a receiver that is down gets
    real rest and the retries of many messages do not hit it in step."""
    backoff = min(max_s, base_s * 2 ** (attempts_made - 1))
    return timedelta(seconds=backoff * (0.5 + draw() / 2))
