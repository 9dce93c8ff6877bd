"""Notify's work is split by the Kafka partition of ``civic.tickets`` (keyed by ticket id), because FerretDB v1
applies an update by reading, changing and writing back the document: two replicas writing one document at once
lose an update, even an ``$inc`` or an ``$addToSet``. So every document has one writer, the consumer that owns the
partition of its key, and does that partition's work — its records, and its timers — under the subscription's
in-flight guard, which a rebalance waits for. Documents that many tickets touch (digests, rate counts, timer
buckets, the set of open tickets) are kept one per partition and summed when read.

This module is the timer store of one partition at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from civicbus.mongo import find_by_ids, upsert_by_id
from civicbus.scheduling import FIRST_LOOK_BACK, OVERLAP, MinuteBuckets, bucket_id, minutes_between
from civicbus.topics import TICKETS

TIMERS = "notify_timers"
STATE = "notify_state"
WATERMARK = "ticked_until"


def watermark_id(partition: int) -> str:
    return f"timers|{partition}"


class PartitionTimers:
    """Reminders, escalation steps, retries and digests in minute buckets (``notify_timers``), one bucket per minute
    and partition (``202611251030|3``), ticked partition by partition.

    Entries are filed with the kernel's :class:`MinuteBuckets`. Its ``entries_due`` serves one tick over every
    writer (triage's sweep); notify's tick is per partition, so it reads only the buckets of the partition it works
    for, from that partition's own watermark (``notify_state``, ``_id`` = ``timers|<partition>``): one shared
    watermark would have every replica as a writer, and a replica's tick would move it past the minutes of a
    partition nobody had ticked yet (its owner down, the group rebalancing)."""

    def __init__(self, db: AsyncDatabase, partitions: int = TICKETS.partitions) -> None:
        self._buckets = db[TIMERS]
        self._state = db[STATE]
        # Filing only: the store's single watermark (``timers``) is never read or moved.
        self._filing = MinuteBuckets(db[TIMERS], db[STATE], "timers", WATERMARK, writers=partitions)

    async def file(self, entries: Iterable[tuple[datetime, str]], now: datetime, partition: int) -> None:
        await self._filing.file(entries, now, writer=partition)

    async def entries_due(self, partition: int, now: datetime) -> set[str]:
        """Every entry of the partition's buckets from its last tick (less ``OVERLAP``) up to ``now``."""
        state = await self._state.find_one({"_id": watermark_id(partition)}) or {}
        since = state.get(WATERMARK, now - FIRST_LOOK_BACK) - OVERLAP
        buckets = await find_by_ids(self._buckets, [bucket_id(minute, partition)
                                                    for minute in minutes_between(since, now)])
        return {entry for bucket in buckets.values() for entry in bucket.get("entries", [])}

    async def ticked(self, partition: int, now: datetime) -> None:
        """Move the partition's watermark to ``now`` (never back)."""
        await upsert_by_id(self._state, {watermark_id(partition): {"$max": {WATERMARK: now}}})
