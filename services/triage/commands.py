"""Triage's command handler: commands on tickets in (civic.commands), transitions or refusals out (civic.tickets),
and each command's decision for the one who sent it (civic.command-results).

One writer per ticket: commands are keyed by the shard in the ticket's number (civicbus.events.ticket_shard), the
key of the triaged events that open and join the ticket too, so one consumer applies all of them in order.
Each outcome is first written as a decision record (``command_results``, triage's own, by command id, holding the
events to publish), then applied to the ticket (which remembers the command ids it applied), then published, and
then the decision is announced (``CommandDecided``): whoever reads it, intake answering its caller, finds the ticket
written and the transition announced. A command read again — a redelivery, or the same command id sent twice —
finds its decision record: the ticket is brought up to it if the crash came before, its events and its decision are
published again under the same ids, and nothing else happens.
A dispatcher's 改派 that teaches the classifier (learned.correction_of) is recorded before its decision record, so a
redelivery that finds no decision record derives it again under the same id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from civicbus.district import District
from civicbus.events import (
    Action,
    Actor,
    CommandDecided,
    EventKind,
    Ticket,
    TicketCommand,
    TicketEvent,
    derived_event_id,
)
from civicbus.kafka import BatchOutcome, Consumed, Publisher
from civicbus.mongo import find_by_ids, insert_missing
from civicbus.refusals import RefusalCode
from civicbus.topics import COMMAND_DECISIONS, TICKETS

from .decide import TriageEngine
from .learned import CORRECTIONS_COLLECTION, correction_of
from .lifecycle import Applied, Refused, apply
from .redispatch import rerouted, with_new_deadlines
from .store import StoredTicket, TicketStore

DECISIONS_COLLECTION = "command_results"
"""Triage's decision records, by command id: what makes a command read twice apply once."""

# Fields a command never sets: the events consumer owns them (grouping), they are bookkeeping, or personal data
# that only the ticket keeps (decision records hold no caller_phone, README).
ROLE_NAMES = {"leader": "领导", "admin": "管理员"}


def actor_text(actor: Actor, district: District) -> str:
    """Who the timeline says acted: a person signed in to the workbench by name and unit (or role), so that every
    step names the one who took it; a key (a system, a unit's shared key) by its name."""
    if not actor.account:
        return actor.name
    unit = district.units.get(actor.unit)
    where = ROLE_NAMES.get(actor.role) or (unit.name if unit else actor.unit)
    return f"{actor.name}（{where}）" if where else actor.name


def decision_record(command: TicketCommand, outcome: Applied | Refused, events: list[TicketEvent]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ticket_id": command.ticket_id,
        "action": str(command.action),
        "actor": command.actor.model_dump(),
        "decided_at": datetime.now(UTC),
        "events": [event.model_dump(mode="json", exclude={"ticket": {"caller_phone"}}) for event in events],
    }
    if isinstance(outcome, Refused):
        record |= {"status": "refused", "code": str(outcome.code), "message": outcome.message,
                   "message_en": outcome.message_en}
    else:
        record |= {"status": "applied", "transition": str(outcome.kind), "state": str(outcome.ticket.state)}
    return record


def decision_event(command: TicketCommand, record: dict[str, Any]) -> CommandDecided:
    """A decision record as announced: the same id every time the command is read, so it is recorded once."""
    return CommandDecided(
        event_id=derived_event_id(command.event_id, "decided"),
        source="civicbus.triage",
        occurred_at=record["decided_at"],
        correlation_id=command.correlation_id,
        command_id=command.event_id,
        ticket_id=command.ticket_id,
        **{name: record[name] for name in ("status", "transition", "state", "code", "message", "message_en")
           if name in record},
    )


class CommandHandler:
    def __init__(
        self, engine: Callable[[], TriageEngine], store: TicketStore, publisher: Publisher, db: AsyncDatabase
    ) -> None:
        self._engine = engine  # the rules in force (they may be reloaded)
        self._store = store
        self._publisher = publisher
        self._results = db[DECISIONS_COLLECTION]
        self._corrections = db[CORRECTIONS_COLLECTION]

    async def __call__(self, batch: list[Consumed]) -> BatchOutcome:
        outcome = BatchOutcome()
        commands: dict[str, TicketCommand] = {}
        for item in batch:
            commands.setdefault(item.event.event_id, item.event)
        outcome.duplicates = len(batch) - len(commands)
        decided = await find_by_ids(self._results, commands)
        stored = await self._store.get_many({command.ticket_id for command in commands.values()})
        current: dict[str, Ticket] = {ticket_id: item.ticket for ticket_id, item in stored.items()}
        engine = self._engine()
        now = datetime.now(UTC)

        records: dict[str, dict[str, Any]] = {}
        corrections: dict[str, dict[str, Any]] = {}
        to_publish: list[TicketEvent] = []
        for command_id, command in commands.items():
            if command_id in decided:
                outcome.duplicates += 1
                holder = stored.get(command.ticket_id)
                replayed = _with_caller_phone(decided[command_id]["events"], holder)
                to_publish.extend(replayed)
                if decided[command_id]["status"] == "applied" and holder is not None \
                        and command_id not in holder.applied_commands:
                    # Decided, but the ticket was not written before a crash: later commands of this batch act on
                    # the ticket as this one left it, not as it was before.
                    current[command.ticket_id] = replayed[-1].ticket
                continue
            events = []
            try:
                before = current.get(command.ticket_id)
                result = apply(before, command, now, engine.district)
                if isinstance(result, Applied):
                    ticket = result.ticket
                    if result.reroute:
                        ticket = rerouted(engine, ticket, now)
                    elif result.new_deadlines:
                        ticket = with_new_deadlines(engine, ticket, now)
                    if command.action is Action.reassign and before is not None:
                        correction = correction_of(before, ticket, command, engine.district, engine.router)
                        if correction is not None:
                            corrections[command_id] = correction
                    current[command.ticket_id] = ticket
                    events.append(self._event(command, result.kind, ticket, result.note, engine.district,
                                              deadline=result.deadline))
                elif command.ticket_id in current and command.actor.role != "system" \
                        and result.code is not RefusalCode.ticket_not_found:
                    # The refusal is part of the ticket's audit trail too; not one to a key for which the ticket
                    # does not exist (lifecycle: a unit with no business with it).
                    events.append(self._event(command, EventKind.ticket_command_refused, current[command.ticket_id],
                                              result.message, engine.district, refusal_code=str(result.code)))
            except Exception as error:  # a datum this code did not foresee: that command, not the batch
                item = next(item for item in batch if item.event.event_id == command_id)
                outcome.failed.append((item, f"command error: {type(error).__name__}: {error}"))
                continue
            records[command_id] = decision_record(command, result, events)
            to_publish.extend(events)

        await insert_missing(self._corrections, corrections)
        await insert_missing(self._results, records)
        writer = {item.event.ticket_id: item.record.partition for item in batch}
        await self._bring_tickets_up_to(commands, {**decided, **records}, stored, writer)
        await self._publisher.publish(TICKETS, to_publish)
        # Last, once the ticket is written and its transition announced: the caller learns what its command did.
        await self._publisher.publish(COMMAND_DECISIONS, [
            decision_event(commands[command_id], record) for command_id, record in {**decided, **records}.items()])
        return outcome

    async def _bring_tickets_up_to(
        self, commands: dict[str, TicketCommand], records: dict[str, dict[str, Any]], stored: dict[str, StoredTicket],
        writer: dict[str, int],
    ) -> None:
        """Write each ticket's state after its applied commands, once: a command the ticket already remembers is
        not applied again."""
        latest: dict[str, Ticket] = {}
        applied: dict[str, list[str]] = {}
        for command_id, command in commands.items():
            record = records.get(command_id)  # none for a command that failed (dead-lettered)
            holder = stored.get(command.ticket_id)
            if record is None or record["status"] != "applied" or holder is None \
                    or command_id in holder.applied_commands:
                continue
            applied.setdefault(command.ticket_id, []).append(command_id)
            latest[command.ticket_id] = Ticket.model_validate(record["events"][-1]["ticket"])
        await self._store.apply_commands({ticket_id: (ticket, applied[ticket_id])
                                          for ticket_id, ticket in latest.items()})
        moved = [(ticket, writer[ticket_id]) for ticket_id, ticket in latest.items()
                 if (ticket.sign_for_due, ticket.resolve_due)
                 != (stored[ticket_id].ticket.sign_for_due, stored[ticket_id].ticket.resolve_due)]
        await self._store.file_deadlines(moved)  # 改派, 延期, 反弹… put them in new buckets

    @staticmethod
    def _event(
        command: TicketCommand, kind: EventKind, ticket: Ticket, note: str, district: District,
        refusal_code: str = "", deadline: str | None = None,
    ) -> TicketEvent:
        return TicketEvent(
            event_id=derived_event_id(command.event_id, "outcome"),
            kind=kind,
            source="civicbus.triage",
            correlation_id=command.correlation_id,
            ticket=ticket,
            actor=actor_text(command.actor, district),
            note=note,
            command_id=command.event_id,
            refusal_code=refusal_code,
            deadline=deadline,  # type: ignore[arg-type]
        )


def _with_caller_phone(recorded: list[dict[str, Any]], holder: StoredTicket | None) -> list[TicketEvent]:
    """A decision record's events as first published: the record leaves out the caller's phone, the ticket has it."""
    phone = holder.ticket.caller_phone if holder is not None else ""
    return [event.model_copy(update={"ticket": event.ticket.model_copy(update={"caller_phone": phone})})
            for event in map(TicketEvent.model_validate, recorded)]
