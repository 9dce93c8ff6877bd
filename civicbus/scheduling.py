"""Timers that survive restarts, shared by triage's overdue sweep and notify's reminders, escalations, retries and
digests.

A timer is an entry filed in a *minute bucket*, a document whose ``_id`` is its minute (UTC): a tick reads the
buckets of the minutes since the last tick by ``_id`` — the only filter FerretDB v1 pushes down — instead of
querying every ticket by due date. A tick looks back a little further than its last watermark (``OVERLAP``), so a
late write or a crashed tick is caught; entries must therefore be harmless to see twice (callers claim them).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection

from civicbus.logs import get_logger
from civicbus.mongo import find_by_ids, upsert_by_id

log = get_logger(__name__)
OVERLAP = timedelta(minutes=5)  # each tick looks back this far behind its watermark
FIRST_LOOK_BACK = timedelta(days=1)  # how far the very first tick looks


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


def bucket_id(minute: str, writer: int) -> str:
    """A minute's bucket of one writer: ``202611251030|3``."""
    return f"{minute}|{writer}"


class MinuteBuckets:
    """One timer store: its buckets, and the watermark (``field`` of document ``state_id``) of the ticks done.

    Each minute has one bucket per *writer* — the Kafka partition whose owner files the entries — because FerretDB
    v1 applies an update by reading, changing and writing back the document: two replicas adding to one bucket at
    once would lose an entry. A partition has one owner at a time, so each bucket has one writer; a tick reads the
    buckets of every writer (``writers``), a few point reads a minute."""

    def __init__(self, buckets: AsyncCollection, state: AsyncCollection, state_id: str, field: str,
                 writers: int) -> None:
        self._buckets = buckets
        self._state = state
        self._state_id = state_id
        self._field = field
        self._writers = writers

    async def file(self, entries: Iterable[tuple[datetime, str]], now: datetime, writer: int) -> None:
        """File each entry in the bucket of its time — or of ``now`` when that time has passed: a timer filed late
        (after an outage, behind a backlog) must land where the next tick looks, not in a minute already swept.
        A timer older than ``FIRST_LOOK_BACK`` is history (a replayed topic, an old ticket), as far back as a first
        tick looks: it is not filed, so it cannot fire a burst of stale reminders and escalations."""
        by_minute: dict[str, set[str]] = defaultdict(set)
        for at, entry in entries:
            if at >= now - FIRST_LOOK_BACK:
                by_minute[minute_id(max(at, now))].add(entry)
        if by_minute:
            await upsert_by_id(self._buckets, {bucket_id(minute, writer): {"$addToSet": {"entries": {"$each": sorted(names)}}}
                                               for minute, names in by_minute.items()})

    def _watermark(self, writer: int | None) -> str:
        return self._state_id if writer is None else f"{self._state_id}|{writer}"

    async def entries_due(self, now: datetime, writer: int | None = None) -> set[str]:
        """Every entry of the buckets from the last tick (less ``OVERLAP``) up to ``now``: of every writer, or with
        ``writer`` of that writer alone, from its own watermark — a store ticked partition by partition, where one
        shared watermark would move past the minutes of a partition nobody had ticked yet."""
        state = await self._state.find_one({"_id": self._watermark(writer)}) or {}
        since = state.get(self._field, now - FIRST_LOOK_BACK) - OVERLAP
        writers = range(self._writers) if writer is None else (writer,)
        buckets = await find_by_ids(self._buckets, [bucket_id(minute, one) for minute in minutes_between(since, now)
                                                    for one in writers])
        return {entry for bucket in buckets.values() for entry in bucket.get("entries", [])}

    async def ticked(self, now: datetime, writer: int | None = None) -> None:
        """Move the watermark (of ``writer`` alone, if given) to ``now`` (never back)."""
        await upsert_by_id(self._state, {self._watermark(writer): {"$max": {self._field: now}}})


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
