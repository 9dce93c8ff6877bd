"""Exports a leader can forward (可转发的报表): the weekly consultation report (每周一会商) as xlsx and as a printable
HTML page, and the quarterly assessment table (季度考核表) as xlsx.

The builders are pure functions of the JSON bodies of the reporting contract (``Reports.summary``, ``rankings``,
``trend``, ``overdue``, ``recurring``): what a leader reads in an export is exactly what the API answers, with each
figure's 口径 (sheet 指标口径) as the API describes it. Times are shown in the district's time zone, never UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import jinja2
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# The counts a leader reads in the weekly report, in this order (counters of services/reporting/figures.py: COUNT_FIELDS).
COUNT_NAMES: dict[str, str] = {
    "created": "新增工单",
    "routed": "派单",
    "manual": "人工派单",
    "acknowledged": "签收",
    "resolved": "办结",
    "closed": "结案",
    "returned": "退单",
    "overdue_resolve": "办结超期",
    "repeats": "合并重复事件",  # repeated complaints (重复件) and alarms merged into a storm ticket
    "reopened": "反弹",
    "supervised": "督办",
}
UNIT_KIND_NAMES = {"department": "科室", "station": "站所", "village": "村", "community": "社区"}
BEST_AND_WORST = 3  # 红榜 and 黑榜: how many units of each group the weekly report names

RATE_FORMAT = "0.0%"
CHANGE_FORMAT = "+0.0%;-0.0%;0.0%"
HOURS_FORMAT = "0.0"
GOOD, BAD = "1E7B34", "C0392B"  # a change for the better is green, for the worse red (as leaders read them)

_TITLE_FONT = Font(size=14, bold=True)
_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
_THIN = Side(style="thin", color="B7C4D6")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)

# The reporting pages' templates (the weekly report here, the dashboard in dashboard.py).
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


@dataclass(frozen=True)
class WeeklyReport:
    """What the weekly consultation (每周一会商) is about, as the contract's endpoints answer it."""

    district: str
    summary: Mapping[str, Any]  # /v1/summary for the week
    trend: Mapping[str, Any]  # /v1/trend, granularity week, ending with this week
    overdue: Mapping[str, Any]  # /v1/overdue
    recurring: Mapping[str, Any]  # /v1/recurring
    rankings: Sequence[Mapping[str, Any]]  # /v1/rankings/unit, one per peer group (kind)
    generated_at: datetime
    timezone: str  # the district's (Asia/Shanghai): every time shown is in it

    @property
    def title(self) -> str:
        return f"{self.district}每周一会商报告（{self.summary['period']['label']}）"

    @property
    def generated_text(self) -> str:
        return local_time(self.generated_at, self.timezone)


# --------------------------------------------------------------------------- what both formats show


def local_time(moment: datetime | str | None, timezone: str) -> str:
    """An instant (aware, or ISO 8601 with its offset as the API writes it) as people read it: the district's
    wall-clock time, 2026-11-25 17:30; ``—`` for none."""
    if moment is None or moment == "":
        return "—"
    instant = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return instant.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def definition_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Each figure's 口径 as the API describes it: name, numerator, denominator, definition."""
    return [[figure["name"], figure.get("numerator") or "—", figure.get("denominator") or "—",
             figure.get("definition", "")] for figure in summary.get("figures", [])]


def format_value(value: float | None, unit: str) -> str:
    """A figure as staff read it: 87.5% or 12.0 小时; ``—`` when there is nothing to divide by."""
    if value is None:
        return "—"
    return f"{value * 100:.1f}%" if unit == "rate" else f"{value:.1f} 小时"


def format_change(change: float | None, unit: str) -> str:
    if change is None:
        return "—"
    if unit == "rate":
        return f"{change * 100:+.1f} 个百分点"
    return f"{change:+.1f} 小时"


def change_tone(change: float | None, higher_is_better: bool) -> str:
    """``better``, ``worse`` or ``same``: whether a change is good news depends on the figure (超期率 going up is bad)."""
    if not change:
        return "same"
    return "better" if (change > 0) == higher_is_better else "worse"


def counts_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The period's counts beside the previous period's."""
    current, previous = summary["counts"], summary["previous_counts"]
    return [
        {"code": code, "name": name, "value": current.get(code, 0), "previous": previous.get(code, 0),
         "change": current.get(code, 0) - previous.get(code, 0)}
        for code, name in COUNT_NAMES.items() if code in current
    ]


def best_and_worst(ranking: Mapping[str, Any], size: int = BEST_AND_WORST) -> tuple[list[dict], list[dict]]:
    """The best units of a ranking (红榜) and the worst (黑榜, worst first): at most ``size`` each, the upper half
    of the peers at most on the red board, and never the same unit on both."""
    items = list(ranking.get("items", []))
    best = items[:min(size, (len(items) + 1) // 2)]
    worst = list(reversed(items[len(best):]))[:size]
    return best, worst


def peer_group_name(ranking: Mapping[str, Any]) -> str:
    kind = ranking.get("kind") or ""
    return UNIT_KIND_NAMES.get(kind, kind) or "全部单位"


def figure_by_code(summary: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {figure["code"]: figure for figure in summary.get("figures", [])}


def competition_ranks(values: Mapping[str, float | None], higher_is_better: bool) -> dict[str, int]:
    """Ranks of peers by one figure, ties sharing a rank (1, 2, 2, 4); peers without a value get none."""
    valued = sorted((value for value in values.values() if value is not None), reverse=higher_is_better)
    return {key: valued.index(value) + 1 for key, value in values.items() if value is not None}


def content_disposition(filename: str, ascii_filename: str) -> str:
    """An attachment header a browser saves under its Chinese name (RFC 6266 with RFC 5987's ``filename*``), and
    an ASCII name for clients that read only ``filename``."""
    return f"attachment; filename=\"{ascii_filename}\"; filename*=UTF-8''{quote(filename, safe='')}"


# --------------------------------------------------------------------------- xlsx helpers


def _title(sheet: Worksheet, title: str, subtitle: str, width: int) -> int:
    sheet.append([title])
    sheet.cell(1, 1).font = _TITLE_FONT
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=max(width, 1))
    sheet.append([subtitle])
    sheet.cell(2, 1).font = Font(color="555555")
    sheet.merge_cells(start_row=2, start_column=1, end_row=2, end_column=max(width, 1))
    sheet.append([])
    return 4


def _header(sheet: Worksheet, row: int, names: Sequence[str]) -> None:
    for column, name in enumerate(names, start=1):
        cell = sheet.cell(row, column, name)
        cell.font = _HEADER_FONT
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        cell.border = _BORDER


def _row(sheet: Worksheet, row: int, values: Sequence[Any], formats: Sequence[str | None] = ()) -> None:
    for column, value in enumerate(values, start=1):
        if isinstance(value, str):  # a control character a citizen typed is one XML 1.0 forbids: openpyxl refuses it
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
        cell = sheet.cell(row, column, value)
        cell.border = _BORDER
        number_format = formats[column - 1] if column - 1 < len(formats) else None
        if number_format:
            cell.number_format = number_format


def _widths(sheet: Worksheet, widths: Sequence[int]) -> None:
    for column, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(column)].width = width


def _figure_format(unit: str) -> str:
    return RATE_FORMAT if unit == "rate" else HOURS_FORMAT


def _change_format(unit: str) -> str:
    return CHANGE_FORMAT if unit == "rate" else "+0.0;-0.0;0.0"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _as_text(workbook: Workbook) -> None:
    """Formula injection: a complaint titled ``=HYPERLINK(…)`` must not become a live formula. Every cell a
    spreadsheet could read as one is written as text, marked (quotePrefix) so that editing it keeps it text."""
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS):
                    cell.data_type = "s"
                    cell.quotePrefix = True


def _saved(workbook: Workbook) -> bytes:
    _as_text(workbook)
    buffer = BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _period_text(period: Mapping[str, Any]) -> str:
    return f"{period['label']}（{period['since']} 至 {period['until']}）"


def _definitions_sheet(workbook: Workbook, summary: Mapping[str, Any], subtitle: str) -> None:
    """Sheet 指标口径: how each figure is counted, so a table forwarded on its own still says what it means."""
    sheet = workbook.create_sheet("指标口径")
    names = ["指标", "分子", "分母", "口径说明"]
    row = _title(sheet, "指标口径", subtitle, len(names))
    _header(sheet, row, names)
    for values in definition_rows(summary):
        row += 1
        _row(sheet, row, values)
        for column in range(1, len(names) + 1):
            sheet.cell(row, column).alignment = Alignment(vertical="top", wrap_text=True)
    _widths(sheet, [14, 22, 18, 90])


# --------------------------------------------------------------------------- the weekly consultation report


def weekly_workbook(report: WeeklyReport) -> bytes:
    """每周一会商 as xlsx: key figures and their changes, the weekly trend, overdue and recurring problems, and the
    best and worst units of each peer group."""
    summary = report.summary
    subtitle = (f"统计周期：{_period_text(summary['period'])}；对比：{_period_text(summary['previous'])}；"
                f"生成时间：{report.generated_text}")
    workbook = Workbook()

    sheet = workbook.active
    sheet.title = "关键指标"
    row = _title(sheet, report.title, subtitle, 5)
    _header(sheet, row, ["指标", "本周", "上周", "较上周", "趋势"])
    for figure in summary["figures"]:
        row += 1
        unit = figure["unit"]
        _row(sheet, row, [figure["name"], figure["value"], figure["previous"], figure["change"],
                          {"better": "向好", "worse": "变差", "same": "持平"}[
                              change_tone(figure["change"], figure["higher_is_better"])]],
             [None, _figure_format(unit), _figure_format(unit), _change_format(unit)])
        tone = change_tone(figure["change"], figure["higher_is_better"])
        if tone != "same":
            sheet.cell(row, 5).font = Font(color=GOOD if tone == "better" else BAD, bold=True)
    row += 2
    _header(sheet, row, ["事项", "本周", "上周", "较上周"])
    for count in counts_rows(summary):
        row += 1
        _row(sheet, row, [count["name"], count["value"], count["previous"], count["change"]],
             [None, "0", "0", "+0;-0;0"])
    _widths(sheet, [18, 12, 12, 14, 10])

    sheet = workbook.create_sheet("周趋势")
    figures = summary["figures"]
    names = ["周次", "起", "止", *COUNT_NAMES.values(), *(figure["name"] for figure in figures)]
    row = _title(sheet, f"{report.district}近{len(report.trend.get('points', []))}周趋势", subtitle, len(names))
    _header(sheet, row, names)
    for point in report.trend.get("points", []):
        row += 1
        _row(sheet, row,
             [point["label"], point["since"], point["until"],
              *(point["counts"].get(code, 0) for code in COUNT_NAMES),
              *(point["figures"].get(figure["code"]) for figure in figures)],
             [None, None, None, *("0" for _ in COUNT_NAMES), *(_figure_format(figure["unit"]) for figure in figures)])
    _widths(sheet, [16, 12, 12, *(9 for _ in names[3:])])

    sheet = workbook.create_sheet("超期工单")
    names = ["序号", "工单号", "标题", "类别", "主办单位", "属地", "状态", "办结时限", "超期（小时）"]
    row = _title(sheet, f"超期未办结工单（共 {report.overdue.get('total', 0)} 件）", subtitle, len(names))
    _header(sheet, row, names)
    for position, item in enumerate(report.overdue.get("items", []), start=1):
        row += 1
        _row(sheet, row, [position, item["number"], item["title"], item["category_name"], item["lead_unit_name"],
                          item["area_name"], item["state_name"], local_time(item["resolve_due"], report.timezone),
                          item["overdue_hours"]],
             [None] * 8 + [HOURS_FORMAT])
    _widths(sheet, [6, 22, 36, 20, 16, 12, 10, 20, 12])

    sheet = workbook.create_sheet("重复反弹")
    names = ["序号", "工单号", "标题", "类别", "属地", "重复件", "反弹次数"]
    row = _title(sheet, "反复出现的问题（重复件、反弹）", subtitle, len(names))
    _header(sheet, row, names)
    for position, item in enumerate(report.recurring.get("items", []), start=1):
        row += 1
        _row(sheet, row, [position, item["number"], item["title"], item["category_name"], item["area_name"],
                          item["repeats"], item["reopened"]])
    _widths(sheet, [6, 22, 36, 20, 12, 10, 10])

    sheet = workbook.create_sheet("红黑榜")
    names = ["单位类别", "榜单", "名次", "单位", "排名指标", "指标值"]
    row = _title(sheet, "红黑榜（同类单位比较）", subtitle, len(names))
    _header(sheet, row, names)
    by_code = figure_by_code(summary)
    for ranking in report.rankings:
        figure = by_code.get(ranking["rank_by"], {"name": ranking["rank_by"], "unit": "rate"})
        best, worst = best_and_worst(ranking)
        for board, items in (("红榜", best), ("黑榜", worst)):
            for item in items:
                row += 1
                _row(sheet, row, [peer_group_name(ranking), board, item["rank"], item["name"], figure["name"],
                                  item["value"]], [None] * 5 + [_figure_format(figure["unit"])])
                sheet.cell(row, 2).font = Font(color=GOOD if board == "红榜" else BAD, bold=True)
    _widths(sheet, [12, 8, 8, 20, 14, 12])
    _definitions_sheet(workbook, summary, subtitle)
    return _saved(workbook)


def weekly_html(report: WeeklyReport) -> str:
    """每周一会商 as a page to print or forward (A4, print CSS)."""
    summary = report.summary
    figures = [
        {**figure, "value_text": format_value(figure["value"], figure["unit"]),
         "previous_text": format_value(figure["previous"], figure["unit"]),
         "change_text": format_change(figure["change"], figure["unit"]),
         "tone": change_tone(figure["change"], figure["higher_is_better"])}
        for figure in summary["figures"]
    ]
    by_code = figure_by_code(summary)
    boards = []
    for ranking in report.rankings:
        figure = by_code.get(ranking["rank_by"], {"name": ranking["rank_by"], "unit": "rate"})
        best, worst = best_and_worst(ranking)
        boards.append({"group": peer_group_name(ranking), "figure": figure["name"],
                       "best": [{**item, "value_text": format_value(item["value"], figure["unit"])} for item in best],
                       "worst": [{**item, "value_text": format_value(item["value"], figure["unit"])}
                                 for item in worst]})
    return TEMPLATES.get_template("weekly.html").render(
        report=report, period=summary["period"], previous=summary["previous"], figures=figures,
        counts=counts_rows(summary), trend=report.trend.get("points", []),
        count_names=COUNT_NAMES, overdue=report.overdue, recurring=report.recurring.get("items", []),
        boards=boards, definitions=definition_rows(summary),
        overdue_items=[{**item, "due_text": local_time(item["resolve_due"], report.timezone)}
                       for item in report.overdue.get("items", [])],
    )


# --------------------------------------------------------------------------- the quarterly assessment table


def quarterly_workbook(district: str, summary: Mapping[str, Any], rankings: Sequence[Mapping[str, Any]],
                       generated_at: datetime, timezone: str) -> bytes:
    """季度考核表: one sheet per peer group, a row per unit with each figure and its rank among peers (ties share a
    rank), ordered as the contract's ranking orders them; then the district's figures and their 口径."""
    figures = summary["figures"]
    period = summary["period"]
    subtitle = (f"考核周期：{_period_text(period)}；生成时间：{local_time(generated_at, timezone)}；"
                "同类单位之间排名，并列同名次")
    workbook = Workbook()
    workbook.remove(workbook.active)
    for ranking in rankings:
        group = peer_group_name(ranking)
        sheet = workbook.create_sheet(group[:31])
        items = ranking.get("items", [])
        ranks = {figure["code"]: competition_ranks({item["key"]: item["figures"].get(figure["code"])
                                                   for item in items}, figure["higher_is_better"])
                 for figure in figures}
        rank_by = figure_by_code(summary).get(ranking["rank_by"], {}).get("name", ranking["rank_by"])
        names = [f"名次（按{rank_by}）", "单位", "新增工单", "办结"]
        for figure in figures:
            names += [figure["name"], "名次"]
        row = _title(sheet, f"{district}{period['label']}考核表（{group}）", subtitle, len(names))
        _header(sheet, row, names)
        for item in items:
            row += 1
            values: list[Any] = [item["rank"], item["name"], item["counts"].get("created", 0),
                                 item["counts"].get("resolved", 0)]
            formats: list[str | None] = [None, None, "0", "0"]
            for figure in figures:
                values += [item["figures"].get(figure["code"]), ranks[figure["code"]].get(item["key"])]
                formats += [_figure_format(figure["unit"]), "0"]
            _row(sheet, row, values, formats)
        _widths(sheet, [12, 18, 10, 8, *([11, 6] * len(figures))])
        sheet.freeze_panes = sheet.cell(5, 3)

    sheet = workbook.create_sheet("全街道")
    row = _title(sheet, f"{district}{period['label']}总体指标", subtitle, 4)
    _header(sheet, row, ["指标", "本季度", "上季度", "较上季度"])
    for figure in figures:
        row += 1
        unit = figure["unit"]
        _row(sheet, row, [figure["name"], figure["value"], figure["previous"], figure["change"]],
             [None, _figure_format(unit), _figure_format(unit), _change_format(unit)])
    _widths(sheet, [18, 12, 12, 14])
    _definitions_sheet(workbook, summary, subtitle)
    return _saved(workbook)
