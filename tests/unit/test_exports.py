"""The exports (每周一会商, 季度考核表) built from hand-made contract bodies and read back with openpyxl; every time
in them is the district's (Asia/Shanghai), though the contract's instants come in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO

from openpyxl import load_workbook

from services.reporting.exports import (
    WeeklyReport,
    best_and_worst,
    change_tone,
    competition_ranks,
    content_disposition,
    local_time,
    quarterly_workbook,
    weekly_html,
    weekly_workbook,
)

WEEK = {"kind": "week", "since": "2026-11-23", "until": "2026-11-29", "label": "2026年第48周"}
PREVIOUS_WEEK = {"kind": "week", "since": "2026-11-16", "until": "2026-11-22", "label": "2026年第47周"}
GENERATED = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 09:30 in the district
ZONE = "Asia/Shanghai"


def _figure(code: str, name: str, value, previous, higher_is_better=True, unit="rate") -> dict:
    change = None if value is None or previous is None else round(value - previous, 4)
    return {"code": code, "name": name, "name_en": code, "unit": unit, "higher_is_better": higher_is_better,
            "definition": f"{name}的口径", "numerator": f"{name}的分子", "denominator": f"{name}的分母",
            "value": value, "previous": previous, "change": change}


SUMMARY = {
    "period": WEEK, "previous": PREVIOUS_WEEK, "filters": {},
    "counts": {"created": 12, "routed": 10, "resolved": 6, "overdue_resolve": 2, "returned": 1},
    "previous_counts": {"created": 8, "routed": 8, "resolved": 6, "overdue_resolve": 0, "returned": 3},
    "figures": [
        _figure("response_rate", "响应率", 0.9, 0.8),
        _figure("closure_rate", "办结率", 0.6, None),
        _figure("overdue_rate", "超期率", 0.2, 0.1, higher_is_better=False),
        _figure("median_handling_hours", "办理时长中位数", 5.5, 7.0, higher_is_better=False, unit="hours"),
    ],
}
TREND = {"granularity": "week", "points": [
    {"since": "2026-11-09", "until": "2026-11-15", "label": "2026年第46周", "counts": {"created": 3}, "figures": {}},
    {"since": "2026-11-16", "until": "2026-11-22", "label": "2026年第47周", "counts": {"created": 8, "routed": 8},
     "figures": {"response_rate": 0.8}},
    {"since": "2026-11-23", "until": "2026-11-29", "label": "2026年第48周", "counts": SUMMARY["counts"],
     "figures": {"response_rate": 0.9}},
]}
OVERDUE = {"total": 1, "items": [
    {"ticket_id": "t1", "number": "SF20261123000001", "title": "东湖路工地扬尘", "category": "environment.dust",
     "category_name": "生态环保/扬尘污染", "lead_unit": "huanbao", "lead_unit_name": "生态环境办",
     "area": "donghu", "area_name": "东湖社区", "state": "acknowledged", "state_name": "已签收",
     "resolve_due": "2026-11-24T09:30:00+00:00", "overdue_hours": 26.5}]}  # 17:30 in the district
RECURRING = {"items": [{"ticket_id": "t2", "number": "SF20261120000007", "title": "南塘村焚烧秸秆",
                        "category_name": "生态环保/秸秆焚烧", "area_name": "南塘村", "repeats": 3, "reopened": 1}]}


def _ranking(kind: str, names: list[tuple[str, str, float]]) -> dict:
    return {"period": WEEK, "scope": "unit", "kind": kind, "rank_by": "response_rate", "items": [
        {"rank": position, "key": key, "name": name, "value": value,
         "figures": {"response_rate": value, "closure_rate": value / 2, "overdue_rate": 1 - value,
                     "median_handling_hours": 4.0},
         "counts": {"created": position * 2, "resolved": position}}
        for position, (key, name, value) in enumerate(names, start=1)]}


VILLAGES = _ranking("village", [("nantang", "南塘村", 1.0), ("xixi", "西溪村", 0.9), ("beishan", "北山村", 0.9),
                                ("dongpo", "东坡村", 0.5), ("qiaotou", "桥头村", 0.25)])
DEPARTMENTS = _ranking("department", [("huanbao", "生态环境办", 0.75), ("laobao", "劳动保障所", 0.5)])


def _report() -> WeeklyReport:
    return WeeklyReport("示范街道", SUMMARY, TREND, OVERDUE, RECURRING, [DEPARTMENTS, VILLAGES], GENERATED, ZONE)


def _rows(sheet) -> list[tuple]:
    return [row for row in sheet.iter_rows(values_only=True)]


def test_weekly_workbook_reads_back_with_the_figures_changes_and_problems() -> None:
    workbook = load_workbook(BytesIO(weekly_workbook(_report())))
    assert workbook.sheetnames == ["关键指标", "周趋势", "超期工单", "重复反弹", "红黑榜", "指标口径"]

    key = workbook["关键指标"]
    assert key["A1"].value == "示范街道每周一会商报告（2026年第48周）"
    assert key["A2"].value.endswith("生成时间：2026-11-25 09:30"), "local time, not UTC 01:30"
    rows = _rows(key)
    assert ("响应率", 0.9, 0.8, 0.1, "向好") in rows
    assert ("办结率", 0.6, None, None, "持平") in rows
    assert ("超期率", 0.2, 0.1, 0.1, "变差") in rows  # up is worse for 超期率
    assert ("办理时长中位数", 5.5, 7.0, -1.5, "向好") in rows
    assert ("新增工单", 12, 8, 4, None) in rows
    assert ("退单", 1, 3, -2, None) in rows
    response = next(cell for cell in key["A"] if cell.value == "响应率")
    assert key.cell(response.row, 2).number_format == "0.0%"

    trend = _rows(workbook["周趋势"])
    assert [row[0] for row in trend[4:]] == ["2026年第46周", "2026年第47周", "2026年第48周"]
    assert trend[4][3] == 3  # the first count column is 新增工单

    overdue = _rows(workbook["超期工单"])
    assert overdue[0][0] == "超期未办结工单（共 1 件）"
    assert overdue[4][1:5] == ("SF20261123000001", "东湖路工地扬尘", "生态环保/扬尘污染", "生态环境办")
    assert overdue[4][7] == "2026-11-24 17:30", "the deadline in local time, not UTC 09:30"
    assert overdue[4][8] == 26.5

    definitions = _rows(workbook["指标口径"])
    assert definitions[3] == ("指标", "分子", "分母", "口径说明")
    assert definitions[4] == ("响应率", "响应率的分子", "响应率的分母", "响应率的口径")
    assert [row[0] for row in definitions[4:]] == [figure["name"] for figure in SUMMARY["figures"]]

    assert _rows(workbook["重复反弹"])[4][1:] == ("SF20261120000007", "南塘村焚烧秸秆", "生态环保/秸秆焚烧", "南塘村", 3, 1)

    boards = [row for row in _rows(workbook["红黑榜"])[4:]]
    assert [(row[0], row[1], row[3]) for row in boards] == [
        ("科室", "红榜", "生态环境办"), ("科室", "黑榜", "劳动保障所"),  # two peers: one on each board
        ("村", "红榜", "南塘村"), ("村", "红榜", "西溪村"), ("村", "红榜", "北山村"),
        ("村", "黑榜", "桥头村"), ("村", "黑榜", "东坡村"),
    ]


def test_weekly_html_is_a_printable_chinese_page_with_the_same_numbers() -> None:
    page = weekly_html(_report())
    assert "<title>示范街道每周一会商报告（2026年第48周）</title>" in page
    assert "@media print" in page and "@page" in page
    assert '<td class="number">90.0%</td>' in page and "+10.0 个百分点" in page
    assert '<td class="number worse">+10.0 个百分点</td>' in page  # 超期率 went up
    assert "SF20261123000001" in page and "26.5 小时" in page
    assert "南塘村焚烧秸秆" in page
    assert "村黑榜（按响应率）" in page and "桥头村" in page
    assert "生成时间 2026-11-25 09:30" in page and '<td class="due">2026-11-24 17:30</td>' in page
    assert '<td title="响应率的口径">响应率</td>' in page, "the 口径 as the figure's tooltip"
    assert "<td>超期率</td><td>超期率的分子</td><td>超期率的分母</td><td>超期率的口径</td>" in page


def test_weekly_html_escapes_what_citizens_wrote() -> None:
    overdue = {"total": 1, "items": [{**OVERDUE["items"][0], "title": "<script>alert(1)</script>"}]}
    report = WeeklyReport("示范街道", SUMMARY, TREND, overdue, RECURRING, [], GENERATED, ZONE)
    page = weekly_html(report)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_quarterly_workbook_ranks_peers_per_figure() -> None:
    quarter = {**SUMMARY, "period": {"kind": "quarter", "since": "2026-10-01", "until": "2026-12-31",
                                     "label": "2026年第4季度"}}
    workbook = load_workbook(BytesIO(quarterly_workbook("示范街道", quarter, [DEPARTMENTS, VILLAGES], GENERATED,
                                                        ZONE)))
    assert workbook.sheetnames == ["科室", "村", "全街道", "指标口径"]
    sheet = workbook["村"]
    assert sheet["A1"].value == "示范街道2026年第4季度考核表（村）"
    header = _rows(sheet)[3]
    assert header[:6] == ("名次（按响应率）", "单位", "新增工单", "办结", "响应率", "名次")
    rows = {row[1]: row for row in _rows(sheet)[4:]}
    assert rows["南塘村"][:6] == (1, "南塘村", 2, 1, 1.0, 1)
    assert rows["西溪村"][5] == rows["北山村"][5] == 2  # tied peers share a rank
    assert rows["东坡村"][5] == 4
    overdue_rank = header.index("超期率") + 1
    assert rows["南塘村"][overdue_rank] == 1 and rows["桥头村"][overdue_rank] == 5  # lower is better
    assert _rows(workbook["全街道"])[4] == ("响应率", 0.9, 0.8, 0.1)
    assert "生成时间：2026-11-25 09:30" in sheet["A2"].value
    assert _rows(workbook["指标口径"])[5][0] == "办结率"


def test_an_instant_is_shown_in_the_districts_time() -> None:
    assert local_time(datetime(2026, 12, 31, 16, 5, tzinfo=UTC), ZONE) == "2027-01-01 00:05"  # a new year there
    assert local_time("2026-11-24T09:30:00Z", ZONE) == "2026-11-24 17:30"
    assert local_time("2026-11-24T17:30:00+08:00", ZONE) == "2026-11-24 17:30"
    assert local_time(None, ZONE) == "—"


def test_best_and_worst_never_name_a_unit_twice() -> None:
    best, worst = best_and_worst(VILLAGES, size=3)
    assert [item["key"] for item in best] == ["nantang", "xixi", "beishan"]
    assert [item["key"] for item in worst] == ["qiaotou", "dongpo"]
    best, worst = best_and_worst(VILLAGES, size=2)
    assert [item["key"] for item in best] == ["nantang", "xixi"]
    assert [item["key"] for item in worst] == ["qiaotou", "dongpo"]
    assert best_and_worst({"items": VILLAGES["items"][:1]}) == (VILLAGES["items"][:1], [])


def test_ranks_and_tones() -> None:
    assert competition_ranks({"a": 0.5, "b": 0.9, "c": 0.9, "d": None}, higher_is_better=True) == {
        "b": 1, "c": 1, "a": 3}
    assert competition_ranks({"a": 0.5, "b": 0.9}, higher_is_better=False) == {"a": 1, "b": 2}
    assert change_tone(0.1, higher_is_better=False) == "worse"
    assert change_tone(None, higher_is_better=True) == "same"


def test_content_disposition_carries_the_chinese_name_per_rfc_5987() -> None:
    header = content_disposition("示范街道每周一会商_2026年第48周.xlsx", "weekly-2026-11-23.xlsx")
    assert header.startswith('attachment; filename="weekly-2026-11-23.xlsx"; ')
    assert "filename*=UTF-8''%E7%A4%BA%E8%8C%83" in header
