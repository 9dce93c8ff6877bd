"""The leaders' HTTP API (领导查询接口): figures, rankings, trends, overdue and recurring lists, tickets.

Who sees what (角色): ``leader``, ``admin`` and ``auditor`` (审计, read-only — this API only reads) see everything;
a ``unit`` key sees the tickets it leads or assists and the figures credited to its own unit — asking for another
unit's figures is refused with 403, and another unit's ticket answers 404, as if it did not exist (a unit learns
nothing about tickets it has no part in). ``system`` keys (upstream systems) may not read reports.

Personal data (个人信息最小化): the caller's phone number is there for the 回访 callback, so only those who call back
see it whole — ``admin`` keys and the unit keys of the lead unit and of the dispatcher (综治中心). Everyone else,
leaders and auditors included, reads phone and ID numbers, e-mails and names masked (``civicbus/privacy.py``), in
every field of the ticket and its timeline and in the overdue and recurring lists; a search (``q``) matches only
what the reader is shown, so it cannot confirm a number the answer hides.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from civicbus.auth import Principal, Role, require_roles
from civicbus.district import UnitKind
from civicbus.privacy import mask_record
from civicbus.topics import TICKETS

from .figures import FigureBook
from .report import Granularity, Period, PeriodKind, ReportFilter, Reports, Scope

router = APIRouter(prefix="/v1", tags=["reporting"])
MAX_SKIP = 1_000_000
_reading_roles = require_roles(Role.leader, Role.admin, Role.auditor, Role.unit)


async def _reader(principal: Annotated[Principal, Depends(_reading_roles)]) -> Principal:
    if principal.role is Role.unit and not principal.unit:
        # Without its unit, a unit key's limits could not be applied: it would see everything.
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="单位密钥未绑定单位 (this unit key names no unit)")
    return principal


Reader = Annotated[Principal, Depends(_reader)]


def _reports(request: Request) -> Reports:
    return request.app.state.reports


def _period(
    request: Request,
    period: Annotated[PeriodKind, Query(description="day | week (周一至周日) | month | quarter | custom")] = "week",
    at: Annotated[date | None, Query(description="a day inside the period (Asia/Shanghai); default today")] = None,
    since: Annotated[date | None, Query(description="custom: first day, inclusive")] = None,
    until: Annotated[date | None, Query(description="custom: last day, inclusive")] = None,
) -> Period:
    return _reports(request).period(period, at, since, until)


def _filter(
    principal: Reader,
    unit: Annotated[str, Query(description="unit id (承办单位): figures credited to it; tickets it leads")] = "",
    area: Annotated[str, Query(description="village/community unit id (属地村社区)")] = "",
    category: Annotated[str, Query(description="category code, root or child (e.g. environment, "
                                               "environment.dust)")] = "",
    source: Annotated[str, Query(description="event source, or its prefix (12345, iot, iot.smoke, …)")] = "",
) -> ReportFilter:
    if principal.role is Role.unit:
        if unit and unit != principal.unit:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"无权查看其他单位的数据 (a unit key reads only its own unit, {principal.unit})")
        unit = principal.unit
    return ReportFilter(unit=unit, area=area, category=category, source=source)


PeriodParam = Annotated[Period, Depends(_period)]
FilterParam = Annotated[ReportFilter, Depends(_filter)]


def _viewer(principal: Principal) -> str:
    return principal.unit if principal.role is Role.unit else ""


def as_shown_to(principal: Principal, ticket: dict[str, Any], dispatcher: str) -> dict[str, Any]:
    """The ticket (or a list's item) as this reader may see it: whole for those who make the callback, personal
    data masked else (the workbench shows tickets to people by the same rule)."""
    calls_back = principal.role is Role.admin or (
        principal.role is Role.unit and principal.unit in (ticket.get("lead_unit"), dispatcher))
    return ticket if calls_back else mask_record(ticket)


def _shown_to(principal: Principal, request: Request) -> Callable[[dict[str, Any]], dict[str, Any]]:
    dispatcher = request.app.state.runtime.district.dispatcher.id
    return lambda ticket: as_shown_to(principal, ticket, dispatcher)


def _example(body: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": body}}}}


_PERIOD = {"kind": "week", "since": "2026-11-23", "until": "2026-11-29", "label": "2026年第48周"}
_PREVIOUS = {"kind": "week", "since": "2026-11-16", "until": "2026-11-22", "label": "2026年第47周"}
_COUNTS = {"created": 12, "routed": 11, "returned": 1, "acknowledged_in_time": 9, "overdue_sign_for": 1,
           "due_sign_for": 10, "resolved": 8, "resolved_in_time": 7, "overdue_resolve": 1, "resolved_late": 1,
           "due_resolve": 8, "resolved_of_due": 8, "callbacks": 6, "callback_rated": 6, "satisfied": 4,
           "basically_satisfied": 1, "dissatisfied": 1, "closed": 5, "reopened": 1}
_FIGURES = {"response_rate": 0.9, "closure_rate": 1.0, "on_time_closure_rate": 0.875, "resolution_rate": 0.8333,
            "satisfaction_rate": 0.8, "overdue_rate": 0.125, "return_rate": 0.0909, "recurrence_rate": 0.2,
            "median_handling_hours": 6.5, "p90_handling_hours": 20.1}
_RESPONSE_RATE = FigureBook().describe("response_rate")


@router.get("/summary", summary="Figures of a period, with the previous period (考核指标汇总)", responses=_example({
    "period": _PERIOD, "previous": _PREVIOUS, "filters": {"unit": "", "area": "", "category": "", "source": ""},
    "counts": _COUNTS, "previous_counts": {"routed": 9}, "handled": 8,
    "figures": [{**_RESPONSE_RATE, "value": 0.9, "previous": 0.8889, "change": 0.0111}],
}))
async def summary(request: Request, period: PeriodParam, where: FilterParam) -> dict[str, Any]:
    """The eight rates — 响应率 response_rate, 办结率 closure_rate, 按期办结率 on_time_closure_rate, 解决率
    resolution_rate, 满意率 satisfaction_rate (weights in reporting.yaml), 超期率 overdue_rate, 退单率 return_rate,
    反弹率 recurrence_rate — and the median and p90 handling time in working hours (办理用时), each defined once in
    ``services/reporting/figures.py`` and described with its 口径 in Chinese (``definition``, ``numerator``,
    ``denominator``). 响应率, 办结率, 按期办结率 and 超期率 divide by what fell due in the period (应签收, 应办结):
    a ticket still within its time limit counts against no one. ``value`` is null when there is nothing to divide
    by."""
    return await _reports(request).summary(period, where)


@router.get("/rankings/{scope}", summary="Peers ranked by one figure (排名)", responses=_example({
    "period": _PERIOD, "filters": {"unit": "", "area": "", "category": "", "source": ""}, "scope": "area",
    "kind": "village", "rank_by": "response_rate",
    "figure": _RESPONSE_RATE,
    "items": [{"rank": 1, "key": "xixi", "name": "西溪村", "value": 1.0, "figures": _FIGURES, "counts": _COUNTS}],
}))
async def rankings(
    scope: Scope,
    request: Request,
    principal: Reader,
    period: PeriodParam,
    where: FilterParam,
    kind: Annotated[UnitKind | None, Query(description="department | station | village | community: rank peers "
                                                       "against peers (scope unit or area)")] = None,
    rank_by: Annotated[str, Query(description="a figure code, e.g. satisfaction_rate")] = "response_rate",
) -> dict[str, Any]:
    """Best first; peers without a value are left out. A unit key sees only its own row (with its rank)."""
    reports = _reports(request)
    own = _viewer(principal)
    # A unit key ranks among its peers: the unit filter it was given selects its row, not the peers' counts.
    peers_filter = ReportFilter(area=where.area, category=where.category, source=where.source) \
        if own and scope in ("unit", "area") else where
    body = await reports.rankings(scope, period, peers_filter, str(kind or ""), rank_by)
    if own and scope in ("unit", "area"):
        body["items"] = [item for item in body["items"] if item["key"] == own]
        body["filters"] = where.as_json()
    return body


@router.get("/trend", summary="Counts and figures over consecutive periods (趋势)", responses=_example({
    "granularity": "week", "filters": {"unit": "", "area": "", "category": "", "source": ""},
    "points": [{**_PREVIOUS, "counts": _COUNTS, "figures": _FIGURES}, {**_PERIOD, "counts": _COUNTS,
                                                                        "figures": _FIGURES}],
}))
async def trend(
    request: Request,
    where: FilterParam,
    granularity: Annotated[Granularity, Query(description="day | week | month")] = "week",
    points: Annotated[int, Query(ge=1, le=60, description="how many periods, the last one holding `at`")] = 8,
    at: Annotated[date | None, Query(description="a day of the last period; default today")] = None,
) -> dict[str, Any]:
    return await _reports(request).trend(granularity, points, at, where)


@router.get("/overdue", summary="Open tickets past their resolve deadline (超期工单)", responses=_example({
    "total": 1, "items": [{"ticket_id": "SF20261120A1B2C3D4E5", "number": "SF20261120A1B2C3D4E5",
                           "title": "工地夜间施工扬尘", "category": "environment.dust", "category_name": "生态环保/扬尘",
                           "lead_unit": "chengguan", "lead_unit_name": "综合行政执法队", "area": "xixi",
                           "area_name": "西溪村", "state": "acknowledged", "state_name": "办理中",
                           "resolve_due": "2026-11-24T17:30:00+08:00", "overdue_hours": 19.5}],
}))
async def overdue(request: Request, principal: Reader, where: FilterParam) -> dict[str, Any]:
    """Most overdue first; ``overdue_hours`` are calendar hours past the deadline, now."""
    found = await _reports(request).overdue(where, _viewer(principal))
    return {**found, "items": [*map(_shown_to(principal, request), found["items"])]}


@router.get("/recurring", summary="Problems that keep coming back (重复件与反弹)", responses=_example({
    "period": _PERIOD, "total": 1,
    "items": [{"ticket_id": "SF20261120A1B2C3D4E5", "number": "SF20261120A1B2C3D4E5", "title": "小区噪声扰民",
               "category": "environment.noise", "category_name": "生态环保/噪声污染", "area": "xinghe",
               "area_name": "星河社区", "lead_unit": "xinghe", "lead_unit_name": "星河社区", "repeats": 3,
               "reopened": 1}],
}))
async def recurring(request: Request, principal: Reader, period: PeriodParam, where: FilterParam) -> dict[str, Any]:
    found = await _reports(request).recurring(period, where, _viewer(principal))
    return {**found, "items": [*map(_shown_to(principal, request), found["items"])]}


_TICKET_EVENT = TICKETS.examples[0]
_TICKET = {**_TICKET_EVENT.ticket.model_dump(mode="json"), "updated_at": _TICKET_EVENT.occurred_at.isoformat()}
_TIMELINE_ENTRY = {"event_id": _TICKET_EVENT.event_id, "kind": str(_TICKET_EVENT.kind),
                   "state": str(_TICKET_EVENT.ticket.state), "at": _TICKET_EVENT.occurred_at.isoformat(),
                   "actor": _TICKET_EVENT.actor, "note": _TICKET_EVENT.note, "command_id": "", "refusal_code": ""}


@router.get("/tickets/{ticket_id}", summary="A ticket with its timeline and notifications (工单详情)",
            responses=_example({**_TICKET, "timeline": [_TIMELINE_ENTRY], "notifications": [
                {"event_id": "b7e0c1d2-0000-4000-8000-000000000001", "recipient": _TICKET["lead_unit"],
                 "channel": "webhook", "status": "delivered", "attempts": 1, "error": "",
                 "at": _TICKET_EVENT.occurred_at.isoformat()}]}))
async def get_ticket(ticket_id: str, request: Request, principal: Reader) -> dict[str, Any]:
    """404 also for a unit key asking for a ticket it neither leads nor assists."""
    ticket = await _reports(request).ticket(ticket_id, _viewer(principal))
    if ticket is None:
        raise HTTPException(404, detail=f"工单 {ticket_id} 不存在 (no such ticket)")
    return _shown_to(principal, request)(ticket)


@router.get("/tickets", summary="Tickets, newest first, filtered, paged (工单查询)",
            responses=_example({"total": 1, "skip": 0, "limit": 50, "items": [_TICKET]}))
async def list_tickets(
    request: Request,
    principal: Reader,
    where: FilterParam,
    period: Annotated[PeriodKind | None, Query(description="created in this period; all when absent")] = None,
    at: Annotated[date | None, Query(description="a day inside the period")] = None,
    since: Annotated[date | None, Query(description="custom: first day")] = None,
    until: Annotated[date | None, Query(description="custom: last day")] = None,
    q: Annotated[str, Query(max_length=100, description="text in the number, title or content, as the reader "
                                                        "is shown them (a masked number is not found)")] = "",
    state: Annotated[str, Query(description="routed, manual, acknowledged, resolved, closed")] = "",
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP, description="tickets to pass over (MongoDB takes a 64-bit "
                                                              "integer; paging this deep is never meant)")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """``unit`` selects the lead unit; a unit key sees the tickets it leads or assists."""
    reports = _reports(request)
    created_in = reports.period(period, at, since, until) if period else None
    return await reports.tickets(where, created_in, q, state, skip, limit, _viewer(principal),
                                 shown=_shown_to(principal, request))
