"""Intake's read model of Open311 service requests (``open311_requests``): what GET requests answers.

A request is recorded when it is posted (before its event is published, so its ticket's first transition always
finds it) and follows its ticket by consuming ``civic.tickets``: open/closed, status notes, the lead unit as
agency_responsible and the resolve deadline as expected_datetime. Services talk only through Kafka, so intake keeps
this small copy instead of asking triage.

One writer per document, with any number of intake replicas: the request (``open311_requests``) is written by the
POST that made it; its status (``open311_status``, same ``_id``) only by the consumer of its ticket's partition of
``civic.tickets``; the two are merged when read (FerretDB v1 updates by read-modify-write, so a POST and a ticket
event updating one document at once would lose one of them). Nothing personal is stored: no phone, no e-mail, no
name, and the description, address, media_url and status notes are kept masked (``civicbus/privacy.py``) — GET
requests is public, as Open311 intends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.operations import UpdateOne

from civicbus.events import STATE_NAMES, EventKind, TicketEvent, TicketState
from civicbus.kafka import BatchOutcome, Consumed
from civicbus.privacy import mask_personal_data
from civicbus.mongo import bulk_write, find_by_ids, insert_missing, upsert_by_id
from civicbus.service import Runtime
from civicbus.topics import TICKETS

COLLECTION = "open311_requests"
STATUS = "open311_status"
UPDATES = "open311_updates"
CLOSED_STATES = (TicketState.resolved, TicketState.closed)
# FixMyStreet's servicerequestupdates extension: the status of each update, in its vocabulary.
UPDATE_STATUS = {
    TicketState.routed: "open",
    TicketState.manual: "open",
    TicketState.acknowledged: "in_progress",
    TicketState.resolved: "fixed",
    TicketState.closed: "closed",
}
# Transitions a citizen hears of; refusals, overdue marks, supervision and staff notes stay internal.
CITIZEN_FACING = {
    EventKind.ticket_routed, EventKind.ticket_manual, EventKind.ticket_acknowledged, EventKind.ticket_resolved,
    EventKind.ticket_callback_recorded, EventKind.ticket_reopened, EventKind.ticket_reassigned,
}


class RequestStore:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.collection: AsyncCollection = runtime.db[COLLECTION]
        self.status: AsyncCollection = runtime.db[STATUS]
        self.updates: AsyncCollection = runtime.db[UPDATES]

    async def record(self, request_id: str, document: dict[str, Any]) -> bool:
        """Record a new request; False if it exists already (a retried POST)."""
        return bool(await insert_missing(self.collection, {request_id: document}))

    async def published(self, request_id: str) -> None:
        """Kafka acknowledged the request's event: the request may be shown. Until then (and if the publish failed)
        it stays hidden but kept: a publish that timed out may still have been written, and then its ticket's
        status shows it too."""
        await upsert_by_id(self.collection, {request_id: {"$set": {"published": True}}})

    async def follow_tickets(self, batch: list[Consumed]) -> BatchOutcome:
        latest: dict[str, TicketEvent] = {}
        for item in batch:
            event: TicketEvent = item.event
            ticket = event.ticket
            for request_id in self._request_ids(event):
                known = latest.get(request_id)
                if known is None or known.ticket.version <= ticket.version:
                    latest[request_id] = event
        # Only Open311 requests are recorded; look-ups by _id (FerretDB pushes nothing else down).
        requests = await find_by_ids(self.collection, latest, {"_id": 1})
        found = await find_by_ids(self.status, requests, {"ticket_version": 1})
        changed = {request_id for request_id in requests
                   if found.get(request_id, {}).get("ticket_version", 0) < latest[request_id].ticket.version}
        # One update per transition and request, by a deterministic id: a replayed batch adds nothing.
        await insert_missing(self.updates, {
            f"{item.event.event_id}:{request_id}": self._update(request_id, item.event)
            for item in batch
            if item.event.kind in CITIZEN_FACING
            for request_id in self._request_ids(item.event)
            if request_id in requests
        })
        await upsert_by_id(self.status, {request_id: {"$set": self._status(latest[request_id])}
                                         for request_id in changed})
        # A record is a duplicate when it concerns Open311 requests and changed none of them (counted per record:
        # one ticket event may carry several requests, its source and its 重复件).
        return BatchOutcome(duplicates=sum(
            1 for item in batch
            if (mine := requests.keys() & set(self._request_ids(item.event))) and not mine & changed))

    @staticmethod
    def _request_ids(event: TicketEvent) -> tuple[str, ...]:
        # Open311 requests become complaints: alarm and inspection tickets (alarm storms) cost no look-up.
        if event.ticket.event_kind is not EventKind.complaint_received:
            return ()
        return (event.ticket.source_event_id, *(repeat.event_id for repeat in event.ticket.repeats))

    def _update(self, request_id: str, event: TicketEvent) -> dict[str, Any]:
        return {
            "service_request_id": request_id,
            "status": UPDATE_STATUS[event.ticket.state],
            "updated_datetime": event.occurred_at,
            "description": self._status(event)["status_notes"],
            "media_url": "",
        }

    async def updates_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Updates in a time span, oldest first (a scan on FerretDB v1; a read path for polling clients)."""
        documents = await self.updates.find({"updated_datetime": {"$gte": start, "$lte": end}}).to_list(None)
        return sorted(documents, key=lambda document: (document["updated_datetime"], document["_id"]))

    def _status(self, event: TicketEvent) -> dict[str, Any]:
        ticket = event.ticket
        district = self.runtime.district
        unit = district.units.get(ticket.lead_unit) or (district.dispatcher if ticket.state == TicketState.manual else None)
        notes = STATE_NAMES[ticket.state]
        if ticket.state in CLOSED_STATES and ticket.resolution:
            notes = f"{notes}：{ticket.resolution}"
        return {
            "status": "closed" if ticket.state in CLOSED_STATES else "open",
            "status_notes": mask_personal_data(notes),
            "agency_responsible": unit.name if unit else "",
            "service_notice": f"工单号 {ticket.ticket_id}",
            "expected_datetime": ticket.resolve_due,
            "updated_datetime": event.occurred_at,
            "ticket_id": ticket.ticket_id,
            "ticket_version": ticket.version,
        }

    async def _with_status(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each request as posted, overlaid with its ticket's status; a request shows once its event was published
        (Kafka acknowledged it, or its ticket exists, whatever the POST was told)."""
        status = await find_by_ids(self.status, [request["_id"] for request in requests])
        return [{**request, **status[request["_id"]]} if request["_id"] in status else request
                for request in requests if request["_id"] in status or request.get("published", True)]

    async def by_ids(self, request_ids: list[str]) -> list[dict[str, Any]]:
        found = await find_by_ids(self.collection, request_ids)
        return await self._with_status([found[request_id] for request_id in request_ids if request_id in found])

    async def search(
        self, start: datetime, end: datetime, service_codes: list[str], statuses: list[str]
    ) -> list[dict[str, Any]]:
        """Requests posted between ``start`` and ``end``, newest first. FerretDB v1 scans the collection for this
        filter: acceptable on this read path (citizens' apps, a few thousand requests), never on a hot path."""
        query: dict[str, Any] = {"requested_datetime": {"$gte": start, "$lte": end}}
        if service_codes:
            query["service_code"] = {"$in": service_codes}
        documents = await self._with_status(await self.collection.find(query).to_list(None))
        if statuses:
            documents = [document for document in documents if document["status"] in statuses]
        return sorted(documents, key=lambda document: (document["requested_datetime"], document["_id"]), reverse=True)


def subscribe_ticket_status(runtime: Runtime, store: RequestStore) -> None:
    runtime.subscribe(TICKETS, store.follow_tickets)
