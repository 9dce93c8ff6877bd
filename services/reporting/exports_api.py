"""The export endpoints (报表导出): the weekly consultation report (每周一会商) and the quarterly assessment table
(季度考核表), built by ``exports.py`` from the same ``Reports`` methods the JSON API answers with.

They compare every unit with its peers, so only keys that may see every unit get them: leader, admin and auditor
(a unit key gets 403). A report is printed and passed round the meeting, so the tickets it lists show personal
data masked whoever downloads it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from civicbus.auth import Principal, Role, require_roles
from civicbus.privacy import mask_record

from .exports import (
    UNIT_KIND_NAMES,
    XLSX_MEDIA_TYPE,
    WeeklyReport,
    content_disposition,
    quarterly_workbook,
    weekly_html,
    weekly_workbook,
)
from .report import Period, ReportFilter, Reports

router = APIRouter(prefix="/v1/exports", tags=["exports"])
LeaderReader = Annotated[Principal, Depends(require_roles(Role.leader, Role.admin, Role.auditor))]
WEEKS_OF_TREND = 8  # the weekly report's 近8周变化


def _filter(
    area: Annotated[str, Query(description="village/community unit id (属地村社区)")] = "",
    category: Annotated[str, Query(description="category code, root or child")] = "",
    source: Annotated[str, Query(description="event source, or its prefix (12345, iot, …)")] = "",
) -> ReportFilter:
    return ReportFilter(area=area, category=category, source=source)


FilterParam = Annotated[ReportFilter, Depends(_filter)]
AtParam = Annotated[date | None, Query(description="a day of the week or quarter (Asia/Shanghai); default today")]
RankByParam = Annotated[str, Query(description="the figure of the rankings, e.g. satisfaction_rate")]


async def _peer_rankings(reports: Reports, period: Period, where: ReportFilter, rank_by: str) -> list[dict[str, Any]]:
    """One ranking per kind of unit (科室, 站所, 村, 社区): peers are compared with peers."""
    return [await reports.rankings("unit", period, where, kind, rank_by) for kind in UNIT_KIND_NAMES]


async def _weekly(request: Request, at: date | None, where: ReportFilter, rank_by: str) -> WeeklyReport:
    reports: Reports = request.app.state.reports
    period = reports.period("week", at)
    return await _weekly_of(reports, period, where, rank_by)


async def _weekly_of(reports: Reports, period: Period, where: ReportFilter, rank_by: str) -> WeeklyReport:
    return WeeklyReport(
        district=reports.district.name,
        summary=await reports.summary(period, where),
        trend=await reports.trend("week", WEEKS_OF_TREND, period.until, where),
        overdue=mask_record(await reports.overdue(where)),
        recurring=mask_record(await reports.recurring(period, where)),
        rankings=await _peer_rankings(reports, period, where, rank_by),
        generated_at=datetime.now(reports.zone),
        timezone=reports.district.timezone,
    )


@router.get("/weekly.xlsx", summary="The weekly consultation report as xlsx (每周一会商)",
            response_class=Response, responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}})
async def weekly_xlsx(request: Request, _: LeaderReader, where: FilterParam, at: AtParam = None,
                      rank_by: RankByParam = "response_rate") -> Response:
    """Sheets 关键指标 (figures and counts against last week), 周趋势 (eight weeks), 超期工单, 重复反弹, 红黑榜 (the
    best and worst three of each kind of unit by ``rank_by``) and 指标口径 (how each figure is counted)."""
    report = await _weekly(request, at, where, rank_by)
    since = report.summary["period"]["since"]
    return Response(weekly_workbook(report), media_type=XLSX_MEDIA_TYPE, headers={
        "Content-Disposition": content_disposition(f"{report.title}.xlsx", f"weekly-report-{since}.xlsx")})


@router.get("/weekly.html", summary="The weekly consultation report as a printable page (每周一会商打印版)",
            response_class=HTMLResponse)
async def weekly_page(request: Request, _: LeaderReader, where: FilterParam, at: AtParam = None,
                      rank_by: RankByParam = "response_rate") -> HTMLResponse:
    return HTMLResponse(weekly_html(await _weekly(request, at, where, rank_by)))


@router.get("/quarterly.xlsx", summary="The quarterly assessment table as xlsx (季度考核表)",
            response_class=Response, responses={200: {"content": {XLSX_MEDIA_TYPE: {}}}})
async def quarterly_xlsx(request: Request, _: LeaderReader, where: FilterParam, at: AtParam = None,
                         rank_by: RankByParam = "response_rate") -> Response:
    """A sheet per kind of unit: every unit with each figure and its rank among its peers; then the district's
    figures against the previous quarter, and 指标口径 (how each figure is counted)."""
    reports: Reports = request.app.state.reports
    period = reports.period("quarter", at)
    summary = await reports.summary(period, where)
    rankings = await _peer_rankings(reports, period, where, rank_by)
    workbook = quarterly_workbook(reports.district.name, summary, rankings, datetime.now(reports.zone),
                                  reports.district.timezone)
    label = summary["period"]["label"]
    return Response(workbook, media_type=XLSX_MEDIA_TYPE, headers={
        "Content-Disposition": content_disposition(f"{reports.district.name}{label}考核表.xlsx",
                                                   f"quarterly-assessment-{period.since}.xlsx")})
