"""The minute-bucket timer store shared by triage's overdue sweep and notify's timers, on the real store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from civicbus.scheduling import MinuteBuckets

pytestmark = pytest.mark.integration


async def test_a_timer_filed_after_its_time_is_seen_by_the_next_tick(mongo):
    suffix = uuid.uuid4().hex[:8]
    timers = MinuteBuckets(mongo[f"buckets_{suffix}"], mongo[f"state_{suffix}"], "tick", "until", writers=2)
    ticked = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    await timers.ticked(ticked)
    # Behind a backlog, a reminder due half an hour before the last tick is filed only now.
    await timers.file([(ticked - timedelta(minutes=30), "late"), (ticked - timedelta(days=3), "history")],
                      now=ticked + timedelta(minutes=1), writer=0)
    await timers.file([(ticked + timedelta(minutes=10), "later")], now=ticked + timedelta(minutes=1), writer=1)

    assert await timers.entries_due(ticked + timedelta(minutes=2)) == {"late"}
    await timers.ticked(ticked + timedelta(minutes=2))
    assert await timers.entries_due(ticked + timedelta(minutes=11)) == {"late", "later"}, \
        "OVERLAP looks back, and every writer's bucket of a minute is read"
    assert await mongo[f"buckets_{suffix}"].count_documents({}) == 2, "one bucket per minute and writer"
    filed = [entry async for bucket in mongo[f"buckets_{suffix}"].find() for entry in bucket["entries"]]
    assert "history" not in filed, "a timer days old is history: not filed at all"
