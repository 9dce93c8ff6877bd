"""Triage's first stage: incoming events in (``civic.events``), decided events out (``EventTriaged`` on
``civic.commands``), keyed by the shard of the problem each belongs to.

``civic.events`` is keyed by event id (alarms by fingerprint), but repeat complaints of one problem, the ticket
gathering them and that ticket's commands must all be handled by one consumer — the one writer of the ticket and
its group. This stage is stateless: it classifies, locates and routes (the CPU work, spread over every replica),
then re-keys each event by its problem's shard (Kafka Streams' repartition), where the ticket's owner takes over
(see ``owner.py``). An alarm is only forwarded: the owner decides it if it opens a ticket, so a storm of one
sensor costs a relay per alarm, not a classification.
"""

from __future__ import annotations

from collections.abc import Callable

from civicbus.events import AlarmRaised, EventTriaged, derived_event_id
from civicbus.kafka import BatchOutcome, Consumed, Publisher
from civicbus.logs import get_logger
from civicbus.topics import COMMANDS

from .decide import TriageEngine
from .groups import alarm_group, home_of
from .response_level import ResponseLevelState

log = get_logger(__name__)


class Triager:
    def __init__(self, engine: Callable[[], TriageEngine], publisher: Publisher, level: ResponseLevelState) -> None:
        self._engine = engine  # the rules in force (they may be reloaded)
        self._publisher = publisher
        self._level = level

    def triage(self, item: Consumed, engine: TriageEngine | None = None) -> EventTriaged:
        event = item.event
        engine = engine or self._engine()
        if isinstance(event, AlarmRaised):
            home, tickets = alarm_group(engine.fingerprint(event)), []
        else:
            tickets = engine.decide(event, self._level.current).tickets
            home = home_of(event.event_id, repeat_key=tickets[0].repeat_key)
        return EventTriaged(
            # Derived: the same event triaged again (a redelivery) is the same record for the owner.
            event_id=derived_event_id(event.event_id, "triaged"),
            source="civicbus.triage",
            occurred_at=event.occurred_at,
            correlation_id=event.correlation_id,
            incoming=event,
            home=home,
            tickets=tickets,
        )

    async def __call__(self, batch: list[Consumed]) -> BatchOutcome:
        outcome = BatchOutcome()
        triaged = []
        engine = self._engine()
        with engine.batch(item.event for item in batch if not isinstance(item.event, AlarmRaised)):
            for item in batch:
                try:
                    triaged.append(self.triage(item, engine))
                except Exception as error:  # a rule or a datum this code did not foresee: that record, not the batch
                    log.exception("triage failed for an event", event_id=item.event.event_id,
                                  correlation_id=item.event.correlation_id)
                    outcome.failed.append((item, f"triage error: {type(error).__name__}: {error}"))
        await self._publisher.publish(COMMANDS, triaged)
        return outcome
