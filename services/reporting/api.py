"""The leaders' HTTP API (领导查询接口): tickets with their timelines, and counts per unit, area and category."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request

from civicbus.auth import CurrentPrincipal

from .figures import FIGURE_BY_CODE, FIGURES, figures_of, ranking
from .queries import COUNT_FIELDS, ReportingQueries

router = APIRouter(prefix="/v1", tags=["reporting"])


def _queries(request: Request) -> ReportingQueries:
    return request.app.state.queries


@router.get("/tickets/{ticket_id}", summary="A ticket with its timeline and notifications (工单详情)")
async def get_ticket(ticket_id: str, request: Request, _: CurrentPrincipal) -> dict[str, Any]:
    ticket = await _queries(request).ticket(ticket_id)
    if ticket is None or "state" not in ticket:
        raise HTTPException(404, detail=f"工单 {ticket_id} 不存在 (no such ticket)")
    return ticket


@router.get("/tickets", summary="Tickets, newest first, filtered (工单查询)")
async def list_tickets(
    request: Request,
    _: CurrentPrincipal,
    unit: Annotated[str, Query(description="lead unit id (主办单位)")] = "",
    area: Annotated[str, Query(description="village/community unit id (属地)")] = "",
    state: Annotated[str, Query(description="routed, manual, …")] = "",
    category: Annotated[str, Query(description="category code")] = "",
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    filters = {"lead_unit": unit, "area": area, "state": state, "category": category}
    items, total = await _queries(request).tickets(filters, skip, limit)
    return {"total": total, "skip": skip, "limit": limit, "items": items}


@router.get("/counts/{scope}", summary="Counts per unit, area, category or the whole district (计数)")
async def counts(
    scope: Literal["unit", "area", "category", "district"],
    request: Request,
    _: CurrentPrincipal,
    key: Annotated[str, Query(description="one unit/area/category id; all when empty")] = "",
    since: Annotated[date | None, Query(description="first day, inclusive (Asia/Shanghai)")] = None,
    until: Annotated[date | None, Query(description="last day, inclusive")] = None,
) -> dict[str, Any]:
    totals = await _queries(request).counts(scope, since, until, key)
    district = request.app.state.runtime.district
    names = {**{unit.id: unit.name for unit in district.units.values()},
             **{code: district.category_path(code) for code in district.category_by_code}}
    return {
        "scope": scope,
        "since": since,
        "until": until,
        "items": [
            {"key": item_key, "name": names.get(item_key, "全街道" if item_key == "all" else item_key),
             **{field: values.get(field, 0) for field in COUNT_FIELDS}}
            for item_key, values in sorted(totals.items())
        ],
    }


@router.get("/figures/{scope}", summary="Rates and rankings per unit, area or category (考核指标与排名)")
async def figures(
    scope: Literal["unit", "area", "category", "district"],
    request: Request,
    _: CurrentPrincipal,
    since: Annotated[date | None, Query(description="first day, inclusive (Asia/Shanghai)")] = None,
    until: Annotated[date | None, Query(description="last day, inclusive")] = None,
    kind: Annotated[str, Query(description="only units of this kind (department, village, community, station): "
                                           "rank peers against peers")] = "",
    rank_by: Annotated[str, Query(description="the figure to rank by, e.g. satisfaction_rate")] = "response_rate",
) -> dict[str, Any]:
    """Each figure is one ratio of counters over the whole period (see services/reporting/figures.py):
    响应率 response_rate, 办结率 closure_rate, 按期办结率 on_time_closure_rate, 解决率 resolution_rate,
    满意率 satisfaction_rate, 超期率 overdue_rate, 退单率 return_rate, 反弹率 recurrence_rate."""
    if rank_by not in FIGURE_BY_CODE:
        raise HTTPException(422, detail=f"未知指标 {rank_by} (unknown figure); known: {', '.join(FIGURE_BY_CODE)}")
    district = request.app.state.runtime.district
    totals = await _queries(request).counts(scope, since, until)
    if kind:
        totals = {key: counts for key, counts in totals.items()
                  if key in district.units and district.units[key].kind == kind}
    names = {unit.id: unit.name for unit in district.units.values()}
    ranked = ranking(totals, FIGURE_BY_CODE[rank_by])
    return {
        "scope": scope,
        "since": since,
        "until": until,
        "figures": [{"code": figure.code, "name": figure.name, "name_en": figure.name_en} for figure in FIGURES],
        "items": [
            {"key": key, "name": names.get(key, district.category_path(key) if scope == "category" else key),
             "counts": dict(counts), "figures": figures_of(counts)}
            for key, counts in sorted(totals.items())
        ],
        "ranking": [{"rank": position, "key": key, "name": names.get(key, key), rank_by: value}
                    for position, (key, value) in enumerate(ranked, start=1)],
    }
