"""A record that breaks its batch is found and dead-lettered alone; an infrastructure failure is not."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect

from civicbus.kafka import BatchOutcome, Consumed, _one_by_one


def items(*names: str) -> list[Consumed]:
    return [Consumed(event=name, record=None) for name in names]  # type: ignore[arg-type]


async def test_the_poison_record_is_isolated_and_the_others_are_handled():
    handled: list[str] = []

    async def handler(batch: list[Consumed]) -> BatchOutcome:
        if any(item.event == "poison" for item in batch):
            raise KeyError("unexpected field")
        handled.extend(item.event for item in batch)
        return BatchOutcome()

    outcome = await _one_by_one(handler, items("a", "poison", "b"))
    assert handled == ["a", "b"]
    assert [(item.event, reason) for item, reason in outcome.failed] == [("poison", "KeyError: 'unexpected field'")]


async def test_an_infrastructure_failure_is_raised_to_read_the_batch_again():
    async def handler(batch: list[Consumed]) -> BatchOutcome:
        raise AutoReconnect("MongoDB went away")

    with pytest.raises(AutoReconnect):
        await _one_by_one(handler, items("a"))
