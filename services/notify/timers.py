"""Timers that survive restarts: reminders before deadlines (到期提醒), escalation after them (超期升级), the
sending of held digests (消息汇总), the retries of failed deliveries and each leader's daily digest (每日汇总).

Like triage's overdue sweep, timers are entries in minute buckets (``notify_timers``), one per minute and partition of
``civic.tickets`` (see partitions.py): each replica ticks only the partitions it owns, one at a time under the
subscription's in-flight guard, so a partition's tick and its Kafka batches never write at once and a rebalance
waits for the tick. A tick reads by ``_id`` the few buckets of its partition since that partition's last tick
(FerretDB pushes down only exact ``_id`` filters, so nothing is scanned). Each ticket's latest state is kept in
``notify_tickets`` (``_id`` = ticket id, written by its partition's owner) so a timer that fires can tell whether its
deadline was met or moved: escalation stops once the ticket is signed for (签收) or resolved (办结). What a timer
sends is claimed under a notification key made of the timer, the recipient and the channel, so a tick repeated by
its look-back or a restart sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from civicbus.district import LeaderRole
from civicbus.events import OPEN_STATES, PENDING_STATES, EventKind, ResponseLevel, Ticket, TicketEvent, derived_event_id
from civicbus.kafka import Subscription
from civicbus.logs import get_logger
from civicbus.metrics import NOTIFY_TIMERS_DONE
from civicbus.mongo import find_by_ids, upsert_by_id
from civicbus.scheduling import run_periodically
from civicbus.topics import TICKETS as TICKET_TOPIC

from .channels import channel_id
from .config import EscalationTarget
from .delivery import Delivery, DeliveryPipeline
from .in_force import InForce
from .partitions import STATE
from .recipients import escalation_recipients, is_urgent
from .schedule import escalation_steps, overdue_text, reminder_times

log = get_logger(__name__)
TICKETS = "notify_tickets"
OPEN = "notify_open"  # per partition: the ids of its open tickets, what the daily digest reads
DAILY_STATE_ID = "daily_digest"
DAILY_PARTITION = 0  # the daily digest is one job: the owner of this partition does it
# Transitions that set a deadline (or move it): reminders are planned from the moment it was set.
DEADLINE_SETTERS = {EventKind.ticket_routed, EventKind.ticket_returned, EventKind.ticket_reassigned,
                    EventKind.ticket_reopened, EventKind.ticket_extension_decided}


@dataclass(frozen=True)
class Timer:
    """One entry of a minute bucket: ``remind|ticket|deadline|fraction|due|at`` or ``escalate|ticket|deadline|step|
    due|at``; held digests are ``digest|<digest id>``, retries ``retry|attempt|due|<notification key>``."""

    kind: str
    ticket_id: str
    deadline: str
    detail: str  # the reminder's fraction or the escalation step's number
    due: datetime
    at: datetime

    def entry(self) -> str:
        return "|".join((self.kind, self.ticket_id, self.deadline, self.detail, self.due.isoformat(),
                         self.at.isoformat()))

    @classmethod
    def parse(cls, entry: str) -> Timer:
        kind, ticket_id, deadline, detail, due, at = entry.split("|")
        return cls(kind, ticket_id, deadline, detail, datetime.fromisoformat(due), datetime.fromisoformat(at))


def open_id(partition: int) -> str:
    return f"open|{partition}"


class Timers:
    def __init__(self, db: AsyncDatabase, in_force: InForce, pipeline: DeliveryPipeline,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._db = db
        self._in_force = in_force
        self._pipeline = pipeline
        self._clock = clock
        self.subscription: Subscription | None = None  # set once subscribed: the partitions this process ticks

    def plan(self, ticket: Ticket, since: datetime) -> list[Timer]:
        """The reminders and escalation steps of a ticket whose deadlines were set at ``since``."""
        config = self._in_force.current
        notify = config.notify.file
        policy = (notify.escalation.policy_for(ticket.category, str(ticket.response_level))
                  if notify.escalation else None)
        factor = (config.district.deadlines.heightened.escalation_factor
                  if ticket.response_level is ResponseLevel.heightened else 1.0)
        timers = []
        for deadline in ("sign_for", "resolve"):
            due = ticket.due(deadline)
            if due is None or ticket.state not in PENDING_STATES[deadline]:
                continue
            if deadline in notify.reminders.deadlines:
                timers.extend(Timer("remind", ticket.ticket_id, deadline, f"{fraction:g}", due, at)
                              for fraction, at in reminder_times(since, due, notify.reminders.at_fractions))
            if policy is not None and deadline in policy.deadlines:
                timers.extend(Timer("escalate", ticket.ticket_id, deadline, str(step.number), due, step.at)
                              for step in escalation_steps(due, policy, factor))
        return timers

    async def file(self, events: Iterable[TicketEvent], partition: int) -> None:
        """Keep the latest state of each ticket of ``partition`` and file the timers of transitions that set
        deadlines (idempotent)."""
        latest: dict[str, Ticket] = {}
        timers: list[Timer] = []
        for event in events:
            ticket = event.ticket
            if ticket.ticket_id not in latest or latest[ticket.ticket_id].version < ticket.version:
                latest[ticket.ticket_id] = ticket
            if event.kind in DEADLINE_SETTERS:
                timers.extend(self.plan(ticket, event.occurred_at))
        if not latest:
            return
        stored = await find_by_ids(self._db[TICKETS], latest, {"version": 1})
        newer = {ticket_id: ticket for ticket_id, ticket in latest.items()
                 if ticket_id not in stored or stored[ticket_id]["version"] < ticket.version}
        if newer:
            # The open set before the snapshots: a stop between the two sees these versions as newer again.
            opened = {ticket_id: 1 for ticket_id, ticket in newer.items() if ticket.state in OPEN_STATES}
            closed = {ticket_id: "" for ticket_id in newer.keys() - opened.keys()}
            await upsert_by_id(self._db[OPEN], {open_id(partition): {
                **({"$set": opened} if opened else {}), **({"$unset": closed} if closed else {})}})
            # Without the caller's phone: no message shows it, and only triage's tickets keep it (README).
            await upsert_by_id(self._db[TICKETS], {
                ticket_id: {"$set": {"version": ticket.version,
                                     "ticket": ticket.model_dump(mode="json", exclude={"caller_phone"})}}
                for ticket_id, ticket in newer.items()
            })
        await self._pipeline.timers.file(((timer.at, timer.entry()) for timer in timers), self._clock(), partition)

    async def tick(self, now: datetime | None = None) -> int:
        """Send what is due up to ``now`` in each partition this process owns: reminders, escalation steps, held
        digests, retries (and, with partition 0, the daily digests). Returns the results published."""
        now = now or self._clock()
        if self.subscription is None:
            return 0
        done = 0
        for partition in sorted(self.subscription.assigned):
            # Reading the buckets writes nothing, so it holds up no batch (a first tick reads a day of them); what
            # a batch files meanwhile, the next tick's look-back sees.
            entries = await self._entries_due(partition, now)
            async with self.subscription.in_flight:
                if partition in self.subscription.assigned:  # not revoked while this waited for the batch
                    done += await self._tick(partition, now, entries)
        return done

    async def _entries_due(self, partition: int, now: datetime) -> list[str]:
        return sorted(await self._pipeline.timers.entries_due(now, writer=partition))

    async def _tick(self, partition: int, now: datetime, entries: list[str]) -> int:
        digests = [entry.split("|", 1)[1] for entry in entries if entry.startswith("digest|")]
        retries = [entry for entry in entries if entry.startswith("retry|")]
        timers = [timer for timer in map(Timer.parse, (e for e in entries if e.startswith(("remind|", "escalate|"))))
                  if timer.at <= now]
        snapshots = await find_by_ids(self._db[TICKETS], {timer.ticket_id for timer in timers})
        tickets = {ticket_id: Ticket.model_validate(document["ticket"]) for ticket_id, document in snapshots.items()}
        deliveries = self._due_deliveries(timers, tickets, now)
        daily_day, daily = await self.daily_digests(now) if partition == DAILY_PARTITION else ("", [])
        results, _ = await self._pipeline.run([*deliveries, *daily], partition)
        results.extend(await self._pipeline.flush_digests(digests, partition, now))
        results.extend(await self._pipeline.retry(retries, partition, now))
        if daily_day:
            await upsert_by_id(self._db[STATE], {DAILY_STATE_ID: {"$max": {"sent_for": daily_day}}})
        await self._pipeline.timers.ticked(now, writer=partition)
        NOTIFY_TIMERS_DONE.labels(str(partition)).set(now.timestamp())
        return len(results)

    def _due_deliveries(self, timers: Iterable[Timer], tickets: dict[str, Ticket], now: datetime) -> list[Delivery]:
        """What the due timers send. A timer whose ticket names a unit or leader the configuration no longer knows
        (a reload removed it) is skipped and logged: the partition's other timers and its watermark go on."""
        planned = []
        for timer in timers:
            if timer.ticket_id not in tickets:
                continue
            try:
                planned.extend(self.deliveries(timer, tickets[timer.ticket_id], now))
            except KeyError as error:
                log.warning("定时消息的收件人已不在配置中，跳过 (timer recipient no longer configured; skipped)",
                            timer=timer.entry(), error=str(error))
        return planned

    def deliveries(self, timer: Timer, ticket: Ticket, now: datetime) -> list[Delivery]:
        """What a due timer sends, or nothing when its deadline was met (签收/办结) or moved (延期, 改派)."""
        due = ticket.due(timer.deadline)
        if due != timer.due or ticket.state not in PENDING_STATES[timer.deadline]:
            return []
        if timer.kind == "remind" and now >= timer.due:
            return []  # a reminder filed late (after an outage) must not announce a deadline already past
        extra: dict[str, Any] = {"deadline": timer.deadline, "due": timer.due}
        config = self._in_force.current
        if timer.kind == "remind":
            kind, targets = EventKind.ticket_reminder, (EscalationTarget.unit.value,)
        else:
            notify = config.notify.file
            if notify.escalation is None:
                return []
            policy = notify.escalation.policy_for(ticket.category, str(ticket.response_level))
            step = int(timer.detail)
            if step > len(policy.steps):
                return []  # the policy changed since the timer was filed
            targets = tuple(policy.steps[step - 1].notify)
            kind = EventKind.ticket_escalated
            extra |= {"step": step, "policy_name": policy.name,
                      "overdue_text": overdue_text((timer.at - timer.due).total_seconds() / 60)}
        urgent = is_urgent(ticket, config.notify)
        timer_id = derived_event_id(timer.kind, ticket.ticket_id, timer.deadline, timer.detail, timer.due.isoformat())
        planned = []
        for recipient, role in escalation_recipients(ticket, targets, config.district):
            # The unit reads a missed deadline as 工单超期; leaders read it as an escalation to act on.
            message_kind = EventKind.ticket_overdue if kind is EventKind.ticket_escalated and role == "lead" else kind
            message = config.renderer.render_ticket(ticket, message_kind, role, **extra)
            for channel in config.notify.channels_of(recipient):
                planned.append(Delivery(
                    key=f"{timer_id}:{recipient}:{channel_id(channel)}", ticket_id=ticket.ticket_id,
                    ticket_event_id=timer_id,
                    correlation_id=ticket.source_event_id, transition=kind, recipient=recipient, role=role,
                    channel=channel, message=message, urgent=urgent,
                ))
        return planned

    async def daily_digests(self, now: datetime) -> tuple[str, list[Delivery]]:
        """Once a day, after ``daily_digest.at``: each leader's summary (每日汇总). The claim keys name the day, so
        a repeated tick sends none twice; the state document (the day returned, stored once sent) spares later ticks
        the reads. The open tickets are read by ``_id``: the open set of every partition, then their snapshots."""
        config = self._in_force.current
        daily = config.notify.file.daily_digest
        if daily is None:
            return "", []
        local = now.astimezone(config.zone)
        day = local.date().isoformat()
        if local.time() < daily.at:
            return "", []
        state = await self._db[STATE].find_one({"_id": DAILY_STATE_ID}) or {}
        if state.get("sent_for", "") >= day:
            return "", []
        open_sets = await find_by_ids(self._db[OPEN], [open_id(partition)
                                                       for partition in range(TICKET_TOPIC.partitions)])
        ids = sorted({ticket_id for document in open_sets.values() for ticket_id in document if ticket_id != "_id"})
        snapshots = await find_by_ids(self._db[TICKETS], ids, {"ticket": 1})
        open_tickets = [ticket for ticket in (Ticket.model_validate(snapshots[ticket_id]["ticket"])
                                              for ticket_id in ids if ticket_id in snapshots)
                        if ticket.state in OPEN_STATES]
        planned = []
        for leader in config.district.leaders.values():
            if leader.role is LeaderRole.main and "main_leaders" in daily.to:
                mine = open_tickets
            elif leader.role is LeaderRole.in_charge and "leader_in_charge" in daily.to:
                mine = [ticket for ticket in open_tickets if ticket.leader == leader.id]
            else:
                continue
            if not mine:
                continue
            message = config.renderer.render_daily(leader, mine, now, daily.max_listed)
            planned.extend(Delivery(
                key=f"daily:{day}:{leader.id}:{channel_id(channel)}", ticket_id="", ticket_event_id="",
                correlation_id="", transition=None, recipient=leader.id, role=str(leader.role), channel=channel,
                message=message, urgent=True,  # sent at the hour chosen for it
            ) for channel in config.notify.channels_of(leader.id))
        return day, planned

    async def run(self, interval: float) -> None:
        await run_periodically(self.tick, interval, "notify timers (messages sent)")
