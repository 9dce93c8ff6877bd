"""The leaders' reports (统计报表) over the read models: periods, filters, and the JSON bodies of the API.

``Reports`` is the one place figures are assembled: the HTTP API returns its dicts as they are, and the exports
call the same methods. Counts are sums over the counter cube (``projections.py``) computed in Python: FerretDB v1
has no aggregation to speak of, and a period is a few hundred small documents. Every read goes through
:func:`merge_shares` (a cell is kept in one share per writer) and a ticket's notifications through
:func:`merge_notifications` (kept apart from its view, by their own writer).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.district import District
from civicbus.events import OPEN_STATES, STATE_NAMES, EventKind, TicketState
from civicbus.mongo import counter_value
from civicbus.workcalendar import WorkingCalendar

from .config import ReportingFile
from .figures import COUNT_FIELDS, FigureBook, ranking, with_derived
from .projections import COUNTERS, DIMENSIONS, TICKET_FACTS, TICKET_NOTIFICATIONS, TICKET_VIEWS

PeriodKind = Literal["day", "week", "month", "quarter", "custom"]
Granularity = Literal["day", "week", "month"]
Scope = Literal["unit", "area", "category"]


class ReportError(ValueError):
    """A period, figure or granularity that cannot be understood; the message is for the caller (Chinese, with
    the English beside)."""


@dataclass(frozen=True)
class Period:
    """A span of whole local days (district time zone), both ends inclusive."""

    kind: PeriodKind
    since: date
    until: date

    @classmethod
    def containing(cls, kind: PeriodKind, day: date) -> Period:
        if kind == "day":
            return cls(kind, day, day)
        if kind == "week":  # Monday to Sunday
            monday = day - timedelta(days=day.weekday())
            return cls(kind, monday, monday + timedelta(days=6))
        if kind == "month":
            first = day.replace(day=1)
            return cls(kind, first, _months_later(first, 1) - timedelta(days=1))
        if kind == "quarter":
            first = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
            return cls(kind, first, _months_later(first, 3) - timedelta(days=1))
        raise ReportError(f"custom 周期须给出起止日期 (a custom period needs since and until), not {kind!r}")

    @classmethod
    def parse(cls, kind: PeriodKind = "week", at: date | None = None, since: date | None = None,
              until: date | None = None, today: date | None = None) -> Period:
        """The period of ``kind`` holding ``at`` (default today), or for ``custom`` the days since..until."""
        if kind == "custom":
            if since is None or until is None:
                raise ReportError("自定义周期须给出 since 和 until (a custom period needs since and until)")
            if since > until:
                raise ReportError(f"起始日期 {since} 晚于结束日期 {until} (since is after until)")
            if (until - since).days > 3 * 366:
                raise ReportError("自定义周期最长三年 (a custom period spans at most three years)")
            return cls("custom", since, until)
        if kind not in ("day", "week", "month", "quarter"):
            raise ReportError(f"未知周期 {kind!r} (unknown period); known: day, week, month, quarter, custom")
        return cls.containing(kind, at or today or date.today())

    @property
    def days(self) -> int:
        return (self.until - self.since).days + 1

    @property
    def label(self) -> str:
        """What leaders read: 2026年11月25日, 2026年第48周, 2026年11月, 2026年第4季度, or the two days."""
        if self.kind == "day":
            return f"{self.since.year}年{self.since.month}月{self.since.day}日"
        if self.kind == "week":
            year, week, _ = self.since.isocalendar()
            return f"{year}年第{week}周"
        if self.kind == "month":
            return f"{self.since.year}年{self.since.month}月"
        if self.kind == "quarter":
            return f"{self.since.year}年第{(self.since.month - 1) // 3 + 1}季度"
        return (f"{self.since.year}年{self.since.month}月{self.since.day}日至"
                f"{self.until.year}年{self.until.month}月{self.until.day}日")

    def previous(self) -> Period:
        """The period just before: the previous day, week, month or quarter; for a custom period, as many days."""
        if self.kind == "custom":
            return Period("custom", self.since - timedelta(days=self.days), self.since - timedelta(days=1))
        return Period.containing(self.kind, self.since - timedelta(days=1))

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The moments the period starts and ends (exclusive) in the district's time zone."""
        return (datetime.combine(self.since, time(0), zone),
                datetime.combine(self.until + timedelta(days=1), time(0), zone))

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "since": self.since.isoformat(), "until": self.until.isoformat(),
                "label": self.label}


@dataclass(frozen=True)
class ReportFilter:
    """Which tickets a figure counts: by the unit credited (主办/退单/协办单位), the area (村/社区), the category
    (a root or a child code: ``environment`` holds ``environment.dust``) and the source (``iot`` holds
    ``iot.smoke``). Empty means any."""

    unit: str = ""
    area: str = ""
    category: str = ""
    source: str = ""

    def matches(self, cell: Mapping[str, Any]) -> bool:
        return ((not self.unit or cell.get("unit") == self.unit)
                and (not self.area or cell.get("area") == self.area)
                and _within(cell.get("category", ""), self.category)
                and _within(cell.get("source", ""), self.source))

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def _months_later(first: date, months: int) -> date:
    """The first day of the month ``months`` after the one starting on ``first``."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _within(value: str, prefix: str) -> bool:
    return not prefix or value == prefix or value.startswith(prefix + ".")


def _prefix_regex(prefix: str) -> dict[str, str]:
    return {"$regex": f"^{re.escape(prefix)}(\\.|$)"}


def _day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def merge_shares(documents: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cube's cells from their writers' shares (``projections.counter_id``): the dimensions, and per count the
    sum over the union of the shares' tokens. An event is counted in one share only, so that is the shares' sum; a
    token that is in two (a cell document of before the split, and an event applied again after it) counts once."""
    tokens: dict[tuple[str, ...], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for document in documents:
        cell = tokens[tuple(document.get(name, "") for name in DIMENSIONS)]
        for name in COUNT_FIELDS:
            if name in document:
                cell[name].update(document[name])
    return [{**dict(zip(DIMENSIONS, key, strict=True)),
             "counts": {name: counter_value(fields, name) for name in fields}}
            for key, fields in tokens.items()]


def merge_notifications(*lists: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A ticket's notifications, oldest first, each once: those of ``ticket_notifications``, and those a view
    written before they were kept apart still holds."""
    by_event = {entry["event_id"]: dict(entry) for entries in lists for entry in entries}
    return sorted(by_event.values(), key=lambda entry: entry["at"])


@dataclass
class _Slice:
    """What one period holds for a filter: summed counts and handling times in working hours."""

    counts: Counter
    hours: list[float]


class Reports:
    """Summary, rankings, trend, overdue and recurring lists, tickets: plain JSON-ready dicts (the leaders' API
    serves them as they are; see its OpenAPI)."""

    def __init__(self, db: AsyncDatabase, district: District, config: ReportingFile,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._views = db[TICKET_VIEWS]
        self._notifications = db[TICKET_NOTIFICATIONS]
        self._counters = db[COUNTERS]
        self._facts = db[TICKET_FACTS]
        self._now = now
        self.use_configuration(district, config)

    def use_configuration(self, district: District, config: ReportingFile) -> None:
        """Names, time zone, working calendar and figure weights of the configuration in force (reloaded without
        a restart)."""
        self.book = FigureBook(config.satisfaction_weights)
        self.district = district
        self.zone = ZoneInfo(district.timezone)
        self.calendar = WorkingCalendar(district.deadlines, district.timezone)

    # ------------------------------------------------------------------ inputs

    def today(self) -> date:
        return self._now().astimezone(self.zone).date()

    def period(self, kind: PeriodKind = "week", at: date | None = None, since: date | None = None,
               until: date | None = None) -> Period:
        return Period.parse(kind, at, since, until, today=self.today())

    async def _cells(self, since: date, until: date) -> list[dict[str, Any]]:
        """The counter cells of the days since..until, with their counts summed over the cell's shares."""
        query = {"day": {"$gte": since.isoformat(), "$lte": until.isoformat()}}
        return merge_shares([document async for document in self._counters.find(query)])

    async def _handled(self, since: date, until: date) -> list[dict[str, Any]]:
        """Tickets resolved in the days since..until, with their handling time in working hours."""
        start, end = Period("custom", since, until).bounds(self.zone)
        query = {"resolved_at": {"$gte": start, "$lt": end}, "routed_at": {"$exists": True}}
        handled = []
        async for document in self._facts.find(query):
            duration = self.calendar.working_time_between(document["routed_at"], document["resolved_at"])
            handled.append({**document, "day": _day(document["resolved_at"], self.zone).isoformat(),
                            "hours": duration.total_seconds() / 3600})
        return handled

    @staticmethod
    def _slice(cells: Iterable[Mapping[str, Any]], handled: Iterable[Mapping[str, Any]],
               since: date, until: date, where: ReportFilter) -> _Slice:
        first, last = since.isoformat(), until.isoformat()
        counts: Counter = Counter()
        for cell in cells:
            if first <= cell["day"] <= last and where.matches(cell):
                counts.update(cell["counts"])
        hours = [item["hours"] for item in handled if first <= item["day"] <= last and where.matches(item)]
        return _Slice(counts, hours)

    def _figures(self, part: _Slice) -> dict[str, float | None]:
        return self.book.values(part.counts, part.hours)

    @staticmethod
    def _counts_json(counts: Mapping[str, int]) -> dict[str, int]:
        return with_derived(counts)

    # ------------------------------------------------------------------ names

    def unit_name(self, unit_id: str) -> str:
        unit = self.district.units.get(unit_id)
        return unit.name if unit else unit_id

    def category_name(self, code: str) -> str:
        return self.district.category_path(code)

    def _key_name(self, scope: Scope, key: str) -> str:
        return self.category_name(key) if scope == "category" else self.unit_name(key)

    # ------------------------------------------------------------------ reports

    async def summary(self, period: Period, where: ReportFilter = ReportFilter()) -> dict[str, Any]:
        """The period's counts and every figure, with the previous period's value and the change."""
        previous = period.previous()
        cells = await self._cells(previous.since, period.until)
        handled = await self._handled(previous.since, period.until)
        now = self._slice(cells, handled, period.since, period.until, where)
        before = self._slice(cells, handled, previous.since, previous.until, where)
        values, previous_values = self._figures(now), self._figures(before)
        amounts = await self.amounts(previous.since, period.until, where)
        return {
            "period": period.as_json(),
            "previous": previous.as_json(),
            "filters": where.as_json(),
            "counts": self._counts_json(now.counts),
            "previous_counts": self._counts_json(before.counts),
            "handled": len(now.hours),
            "figures": [
                {**self.book.describe(code), "value": value, "previous": previous_values[code],
                 "change": _change(value, previous_values[code])}
                for code, value in values.items()
            ],
            "amounts": amounts(period),
            "previous_amounts": amounts(previous),
        }

    async def amounts(self, since: date, until: date,
                      where: ReportFilter) -> Callable[[Period], dict[str, float | int]]:
        """Amounts (涉及金额/追回金额, yuan; e.g. unpaid wages 欠薪 with category=labor.wage_arrears) of the tickets
        that carry one, from the small ticket_facts documents: involved by the day the ticket was created,
        recovered by the day it was resolved (its current resolution: a ticket resolved twice counts once, one sent
        back after an unsatisfied callback or reopened is not resolved). ``unit`` is the lead unit. Returns a
        function giving the totals of any period within since..until."""
        start, end = Period("custom", since, until).bounds(self.zone)
        query = {"amount_involved": {"$gt": 0}, "$or": [{"created_at": {"$gte": start, "$lt": end}},
                                                        {"now_resolved_at": {"$gte": start, "$lt": end}}]}
        found = [fact async for fact in self._facts.find(query)
                 if where.matches({**fact, "unit": fact.get("lead_unit", "")})]

        def totals(period: Period) -> dict[str, float | int]:
            first, last = period.bounds(self.zone)
            created = [fact for fact in found if first <= fact["created_at"] < last]
            resolved = [fact for fact in found
                        if fact.get("now_resolved_at") is not None and first <= fact["now_resolved_at"] < last]
            involved = sum(fact["amount_involved"] for fact in created)
            recovered = sum(fact.get("amount_recovered") or 0 for fact in resolved)
            return {"tickets": len(created), "involved": round(involved, 2), "resolved_tickets": len(resolved),
                    "recovered": round(recovered, 2)}

        return totals

    async def rankings(self, scope: Scope, period: Period, where: ReportFilter = ReportFilter(),
                       kind: str = "", rank_by: str = "response_rate") -> dict[str, Any]:
        """Peers ranked best first by one figure: units (of one ``kind``), villages/communities, or root
        categories; within the other filters."""
        if rank_by not in self.book.by_code:
            raise ReportError(f"未知指标 {rank_by} (unknown figure); known: {', '.join(self.book.by_code)}")
        figure = self.book.by_code[rank_by]
        cells = await self._cells(period.since, period.until)
        handled = await self._handled(period.since, period.until)
        groups: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
        for cell in cells:
            groups[self._peer_key(scope, cell)][0].append(cell)
        for item in handled:
            groups[self._peer_key(scope, item)][1].append(item)
        peers = {key: members for key, members in groups.items() if key and self._is_peer(scope, key, kind)}
        slices = {key: self._slice(group_cells, group_handled, period.since, period.until, where)
                  for key, (group_cells, group_handled) in peers.items()}
        values = {key: self._figures(part) for key, part in slices.items()}
        ranked = ranking({key: figures[rank_by] for key, figures in values.items()}, figure.higher_is_better)
        return {
            "period": period.as_json(),
            "filters": where.as_json(),
            "scope": scope,
            "kind": kind,
            "rank_by": rank_by,
            "figure": self.book.describe(rank_by),
            "items": [
                {"rank": position, "key": key, "name": self._key_name(scope, key), "value": value,
                 "figures": values[key], "counts": self._counts_json(slices[key].counts)}
                for position, (key, value) in enumerate(ranked, start=1)
            ],
            # Peers the figure cannot rank yet (nothing fell due): not ranked, but their counts are shown.
            "unranked": [
                {"key": key, "name": self._key_name(scope, key), "figures": values[key],
                 "counts": self._counts_json(slices[key].counts)}
                for key in sorted(set(values) - {key for key, _ in ranked})
            ],
        }

    def _peer_key(self, scope: Scope, cell: Mapping[str, Any]) -> str:
        if scope == "category":
            return str(cell.get("category", "")).split(".", 1)[0]
        return str(cell.get(scope, ""))

    def _is_peer(self, scope: Scope, key: str, kind: str) -> bool:
        if scope == "category":
            return key in self.district.category_by_code
        unit = self.district.units.get(key)
        if unit is None:  # a leader's notifications, or a unit no longer configured
            return False
        if scope == "area" and not unit.is_area_unit:
            return False
        return not kind or unit.kind == kind

    async def trend(self, granularity: Granularity, points: int, at: date | None = None,
                    where: ReportFilter = ReportFilter()) -> dict[str, Any]:
        """``points`` consecutive periods of ``granularity``, oldest first, the last one holding ``at``."""
        if granularity not in ("day", "week", "month"):
            raise ReportError(f"未知粒度 {granularity!r} (unknown granularity); known: day, week, month")
        periods = [Period.containing(granularity, at or self.today())]
        while len(periods) < points:
            periods.append(periods[-1].previous())
        periods.reverse()
        cells = await self._cells(periods[0].since, periods[-1].until)
        handled = await self._handled(periods[0].since, periods[-1].until)
        items = []
        for period in periods:
            part = self._slice(cells, handled, period.since, period.until, where)
            items.append({**period.as_json(), "counts": self._counts_json(part.counts),
                          "figures": self._figures(part)})
        return {"granularity": granularity, "filters": where.as_json(), "points": items}

    def _ticket_query(self, where: ReportFilter, viewer_unit: str = "") -> dict[str, Any]:
        """A ticket-view filter: ``unit`` is the lead unit; a unit's own key sees what it leads or assists (its
        own unit, which the API puts in ``unit`` for figures, then means led or assisted)."""
        clauses: list[dict[str, Any]] = [{"state": {"$exists": True}}]
        if where.unit and where.unit != viewer_unit:
            clauses.append({"lead_unit": where.unit})
        if viewer_unit:
            clauses.append({"$or": [{"lead_unit": viewer_unit}, {"assist_units": viewer_unit}]})
        if where.area:
            clauses.append({"area": where.area})
        if where.category:
            clauses.append({"category": _prefix_regex(where.category)})
        if where.source:
            clauses.append({"event_source": _prefix_regex(where.source)})
        return {"$and": clauses}

    async def overdue(self, where: ReportFilter = ReportFilter(), viewer_unit: str = "") -> dict[str, Any]:
        """Open tickets past their resolve deadline now, most overdue first (calendar hours past the deadline)."""
        now = self._now()
        query = self._ticket_query(where, viewer_unit)
        query["$and"].append({"state": {"$in": [str(state) for state in OPEN_STATES]}})
        items = []
        projection = {"timeline": 0, "notifications": 0, "explanation": 0, "content": 0}
        async for view in self._views.find(query, projection=projection):
            due = view.get("resolve_due")
            if due is None or due >= now:
                continue
            items.append({
                "ticket_id": view["_id"],
                "number": view["ticket_id"],
                "title": view.get("title", ""),
                "category": view.get("category", ""),
                "category_name": view.get("category_name", ""),
                "lead_unit": view.get("lead_unit", ""),
                "lead_unit_name": self.unit_name(view.get("lead_unit", "")),
                "area": view.get("area", ""),
                "area_name": view.get("area_name", ""),
                "state": view["state"],
                "state_name": STATE_NAMES.get(TicketState(view["state"]), view["state"]),
                "resolve_due": due.isoformat(),
                "overdue_hours": round((now - due).total_seconds() / 3600, 1),
            })
        items.sort(key=lambda item: (-item["overdue_hours"], item["ticket_id"]))
        return {"total": len(items), "items": items}

    async def recurring(self, period: Period, where: ReportFilter = ReportFilter(),
                        viewer_unit: str = "") -> dict[str, Any]:
        """Problems that kept coming back in the period: repeated complaints (重复件) linked to a ticket and
        reopenings (反弹), most first."""
        start, end = period.bounds(self.zone)
        query = self._ticket_query(where, viewer_unit)
        query["$and"].append({"$or": [{"repeats.0": {"$exists": True}}, {"reopen_count": {"$gt": 0}}]})
        items = []
        async for view in self._views.find(query, projection={"content": 0, "explanation": 0, "notifications": 0}):
            repeats = sum(1 for repeat in view.get("repeats", []) if start <= repeat["at"] < end)
            reopened = sum(1 for entry in view.get("timeline", [])
                           if entry.get("kind") == EventKind.ticket_reopened and start <= entry["at"] < end)
            if repeats or reopened:
                items.append({"ticket_id": view["_id"], "number": view["ticket_id"], "title": view.get("title", ""),
                              "category": view.get("category", ""), "category_name": view.get("category_name", ""),
                              "area": view.get("area", ""), "area_name": view.get("area_name", ""),
                              "lead_unit": view.get("lead_unit", ""),
                              "lead_unit_name": self.unit_name(view.get("lead_unit", "")),
                              "repeats": repeats, "reopened": reopened})
        items.sort(key=lambda item: (-(item["repeats"] + item["reopened"]), item["ticket_id"]))
        return {"period": period.as_json(), "total": len(items), "items": items}

    async def tickets(self, where: ReportFilter = ReportFilter(), period: Period | None = None, q: str = "",
                      state: str = "", skip: int = 0, limit: int = 50, viewer_unit: str = "",
                      shown: Callable[[dict[str, Any]], dict[str, Any]] = lambda ticket: ticket) -> dict[str, Any]:
        """Tickets newest first, each as ``shown`` to the reader (personal data masked or not); ``period`` on the
        day they were created; ``q`` in number, title or content as shown — a number the reader sees masked is not
        found, or the search would confirm what the answer hides."""
        query = self._ticket_query(where, viewer_unit)
        if period is not None:
            start, end = period.bounds(self.zone)
            query["$and"].append({"created_at": {"$gte": start, "$lt": end}})
        if state:
            query["$and"].append({"state": state})
        if q:
            text = {"$regex": re.escape(q)}
            query["$and"].append({"$or": [{"ticket_id": text}, {"title": text}, {"content": text}]})
        cursor = self._views.find(query, projection={"_id": 0, "timeline": 0, "notifications": 0})
        if not q:
            total = await self._views.count_documents(query)
            items = [shown(item) async for item in cursor.sort("created_at", DESCENDING).skip(skip).limit(limit)]
            return {"total": total, "skip": skip, "limit": limit, "items": items}
        # The store narrows by the stored text; what the reader is shown decides (and so pages and counts).
        found = [item async for item in (shown(stored) async for stored in cursor.sort("created_at", DESCENDING))
                 if any(q in item.get(field, "") for field in ("ticket_id", "title", "content"))]
        return {"total": len(found), "skip": skip, "limit": limit, "items": found[skip:skip + limit]}

    async def ticket(self, ticket_id: str, viewer_unit: str = "") -> dict[str, Any] | None:
        """A ticket with its timeline and notifications; None when missing or, for a unit, not its own."""
        view = await self._views.find_one({"_id": ticket_id}, projection={"_id": 0})
        if view is None or "state" not in view:
            return None
        if viewer_unit and viewer_unit != view.get("lead_unit") and viewer_unit not in view.get("assist_units", []):
            return None
        view["timeline"] = sorted(view.get("timeline", []), key=lambda entry: entry["at"])
        notifications = await self._notifications.find_one({"_id": ticket_id}) or {}
        view["notifications"] = merge_notifications(view.get("notifications", []),
                                                    notifications.get("notifications", []))
        return view


def _change(value: float | None, previous: float | None) -> float | None:
    return round(value - previous, 4) if value is not None and previous is not None else None

