"""Timers that survive restarts, shared by triage's overdue sweep and notify's reminders and escalations.

A deadline is filed in a *minute bucket*, a document whose ``_id`` is its minute (UTC): a tick reads the buckets
of the minutes since the last tick by ``_id`` — the only filter FerretDB v1 pushes down — instead of querying every
ticket by due date.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from civicbus.logs import get_logger

log = get_logger(__name__)


def minute_id(moment: datetime) -> str:
    """The ``_id`` of a minute bucket, e.g. ``202611251030`` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M")


def minutes_between(start: datetime, end: datetime) -> list[str]:
    """Every minute bucket from ``start``'s minute to ``end``'s, both included."""
    moment = start.astimezone(UTC).replace(second=0, microsecond=0)
    ids = []
    while moment <= end:
        ids.append(minute_id(moment))
        moment += timedelta(minutes=1)
    return ids


async def run_periodically(tick: Callable[[], Awaitable[int]], interval_s: float, what: str) -> None:
    """Run ``tick`` every ``interval_s`` seconds for as long as the service runs. A failed tick (MongoDB or Kafka
    briefly away) is logged and the next one goes on: ticks look back far enough to catch what was missed."""
    while True:
        try:
            done = await tick()
            if done:
                log.info(f"{what}: done", count=done)
        except Exception as error:
            log.warning(f"{what}: failed", error=str(error))
        await asyncio.sleep(interval_s)
