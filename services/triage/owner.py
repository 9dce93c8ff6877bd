"""The owner of tickets: the one consumer of ``civic.commands``, where everything that changes a ticket travels,
keyed by the shard of its problem — the triaged events that open or join tickets (``EventTriaged``) and the commands
on them (``TicketCommand``). Whoever owns a partition owns its groups and tickets, so with any number of triage
replicas each ticket, each group and each deadline bucket has one writer.

A batch is handled in runs of the same kind, in order, so a command never overtakes the event that opened its
ticket.
"""

from __future__ import annotations

from itertools import groupby

from civicbus.events import EventTriaged
from civicbus.kafka import BatchHandler, BatchOutcome, Consumed


class TicketOwner:
    def __init__(self, triaged: BatchHandler, commands: BatchHandler) -> None:
        self._triaged = triaged
        self._commands = commands

    async def __call__(self, batch: list[Consumed]) -> BatchOutcome:
        outcome = BatchOutcome()
        for is_triaged, run in groupby(batch, key=lambda item: isinstance(item.event, EventTriaged)):
            part = await (self._triaged if is_triaged else self._commands)(list(run))
            outcome.failed.extend(part.failed)
            outcome.duplicates += part.duplicates
        return outcome
