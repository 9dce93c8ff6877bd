"""Notify's work is split by the Kafka partition of ``civic.tickets`` (keyed by ticket id), because FerretDB v1
applies an update by reading, changing and writing back the document: two replicas writing one document at once
lose an update, even an ``$inc`` or an ``$addToSet``. So every document has one writer, the consumer that owns the
partition of its key, and does that partition's work — its records, and its timers — under the subscription's
in-flight guard, which a rebalance waits for. Documents that many tickets touch (digests, rate counts, timer
buckets, the set of open tickets) are kept one per partition and summed when read.

This module makes the timer store, ticked one partition at a time.
"""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from civicbus.scheduling import MinuteBuckets
from civicbus.topics import TICKETS

TIMERS = "notify_timers"
STATE = "notify_state"


def partition_timers(db: AsyncDatabase, partitions: int = TICKETS.partitions) -> MinuteBuckets:
    """Reminders, escalation steps, retries and digests in minute buckets (``notify_timers``), one bucket per minute
    and partition (``202611251030|3``), ticked partition by partition (``writer=``), each from its own watermark
    (``notify_state``, ``_id`` = ``timers|<partition>``)."""
    return MinuteBuckets(db[TIMERS], db[STATE], "timers", "ticked_until", writers=partitions)
