"""Reads of the read models: tickets, and counts summed over counter documents (in Python, see civicbus.mongo)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.mongo import counter_value

from .projections import COUNTERS, TICKET_VIEWS

HIDDEN_FIELDS = {"_id": 0}
COUNT_FIELDS = (
    "created", "manual", "routed", "assisted", "repeats", "returned", "acknowledged", "acknowledged_in_time",
    "resolved", "resolved_in_time", "callbacks", "callback_resolved", "callback_rated", "satisfied", "closed",
    "reopened", "supervised", "overdue_sign_for", "overdue_resolve", "notified", "notify_failed",
)


class ReportingQueries:
    def __init__(self, db: AsyncDatabase) -> None:
        self._views = db[TICKET_VIEWS]
        self._counters = db[COUNTERS]

    async def ticket(self, ticket_id: str) -> dict[str, Any] | None:
        return await self._views.find_one({"_id": ticket_id}, projection=HIDDEN_FIELDS)

    async def tickets(self, filters: dict[str, str], skip: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        query = {field: value for field, value in filters.items() if value}
        # Views made only by a notification that arrived before its ticket have no state yet.
        query.setdefault("state", {"$exists": True})
        total = await self._views.count_documents(query)
        cursor = self._views.find(query, projection={**HIDDEN_FIELDS, "timeline": 0, "notifications": 0})
        items = [item async for item in cursor.sort("created_at", DESCENDING).skip(skip).limit(limit)]
        return items, total

    async def counts(self, scope: str, since: date | None, until: date | None, key: str = "") -> dict[str, Counter]:
        """Counts per key of ``scope`` over the days [since, until]."""
        query: dict[str, Any] = {"scope": scope}
        if key:
            query["key"] = key
        days: dict[str, str] = {}
        if since:
            days["$gte"] = since.isoformat()
        if until:
            days["$lte"] = until.isoformat()
        if days:
            query["day"] = days
        totals: dict[str, Counter] = {}
        async for document in self._counters.find(query):
            counts = totals.setdefault(document["key"], Counter())
            for field in COUNT_FIELDS:
                counts[field] += counter_value(document, field)
        return totals
