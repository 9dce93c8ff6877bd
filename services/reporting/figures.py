"""The figures leaders are judged on (docs/product.md), each defined once, here, with its 口径 as leaders read it.

Counts come from the read models (``projections.py``); a figure is computed for any sum of counter documents — a
unit, a village/community, a category, a source, the district; a day, a week, any period — by summing first and
dividing once, so a rate over a month is the month's ratio, not an average of daily rates.

Response, closure and overdue rates divide by what was due (应签收, 应办结), as assessment practice counts, so a
unit is never marked down for a ticket still within its time limit. Each time limit of an assignment falls due
once, on one day: the day it was met (signed for or resolved in time) or the day it passed unmet — whichever
came first. A ticket routed a minute ago is in no denominator yet; one whose limit passed on Sunday night counts
in that week, even if it is resolved on Monday (its late resolution is credited back to Sunday, the day it fell
due). A ticket returned (退单) before its limit counts for nobody but the next unit; new limits (改派, 重办, 反弹)
are due again.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from .config import SatisfactionWeights

COUNT_FIELDS: tuple[str, ...] = (
    "created", "manual", "routed", "assisted", "repeats", "returned", "acknowledged", "acknowledged_in_time",
    "resolved", "resolved_in_time", "resolved_late", "callbacks", "callback_resolved", "callback_rated",
    "satisfied", "basically_satisfied", "dissatisfied", "closed", "reopened", "supervised", "overdue_sign_for",
    "overdue_resolve", "notified", "notify_failed",
)
"""The counts the counter documents hold (see projections.ticket_increments)."""

DERIVED_COUNTS: dict[str, tuple[str, ...]] = {
    "due_sign_for": ("acknowledged_in_time", "overdue_sign_for"),  # 应签收
    "due_resolve": ("resolved_in_time", "overdue_resolve"),  # 应办结
    "resolved_of_due": ("resolved_in_time", "resolved_late"),  # 应办结中已办结
}
"""Counts that are sums of others: every time limit that fell due was either met or missed, once."""

COUNT_NAMES: dict[str, str] = {
    "routed": "派单数",
    "returned": "退单数",
    "acknowledged_in_time": "按期签收数",
    "overdue_sign_for": "签收超时数",
    "due_sign_for": "应签收数",
    "resolved_in_time": "按期办结数",
    "resolved_late": "逾期办结数",
    "overdue_resolve": "办结超期数",
    "due_resolve": "应办结数",
    "resolved_of_due": "已办结数",
    "callbacks": "回访数",
    "callback_resolved": "回访已解决数",
    "callback_rated": "回访评价数",
    "satisfied": "满意",
    "basically_satisfied": "基本满意",
    "dissatisfied": "不满意",
    "closed": "结案数",
    "reopened": "反弹数",
}
"""What leaders read for the counts that figures divide."""


def with_derived(counts: Mapping[str, int]) -> dict[str, int]:
    """Every count field (0 when absent) plus the derived counts (应签收, 应办结, 已办结)."""
    complete = {name: int(counts.get(name, 0)) for name in COUNT_FIELDS}
    for name, parts in DERIVED_COUNTS.items():
        complete[name] = sum(complete[part] for part in parts)
    return complete


@dataclass(frozen=True)
class Figure:
    code: str
    name: str  # what leaders read
    name_en: str
    numerator: Mapping[str, float]  # count → weight
    denominator: str
    definition: str  # 口径, in Chinese
    higher_is_better: bool = True
    unit: str = "rate"

    def value(self, counts: Mapping[str, int]) -> float | None:
        """The ratio, or None when there is nothing to divide by (no ticket due is not a rate of 0 %)."""
        denominator = counts.get(self.denominator, 0)
        if not denominator:
            return None
        numerator = sum(weight * counts.get(name, 0) for name, weight in self.numerator.items())
        return round(numerator / denominator, 4)

    @property
    def numerator_text(self) -> str:
        return " + ".join(COUNT_NAMES[name] if weight == 1 else f"{weight:g} × {COUNT_NAMES[name]}"
                          for name, weight in self.numerator.items() if weight)

    @property
    def denominator_text(self) -> str:
        return COUNT_NAMES[self.denominator]


_DUE_SIGN_FOR = ("应签收：统计期内按期签收的派单，加上签收时限落在统计期内而未按期签收的派单（超时后才签收或仍未签收）；"
                 "尚未到签收时限又未签收的不计入，时限前退单的不计入退单单位。")
_DUE_RESOLVE = ("应办结：统计期内按期办结的工单，加上办结时限落在统计期内而未按期办结的工单；尚未到办结时限又未办结的不计入，"
                "时限前退单的不计入退单单位；重办、反弹、改派后按新时限再计一次。")


def rate_figures(weights: SatisfactionWeights = SatisfactionWeights()) -> tuple[Figure, ...]:
    """The eight rates; 满意率 weighs each verdict by the configured weights (config/…/reporting.yaml)."""
    verdicts = {"satisfied": weights.satisfied, "basically_satisfied": weights.basically_satisfied,
                "dissatisfied": weights.dissatisfied}
    return (
        Figure("response_rate", "响应率", "response rate", {"acknowledged_in_time": 1}, "due_sign_for",
               f"按期签收数 ÷ 应签收数。{_DUE_SIGN_FOR}"),
        Figure("closure_rate", "办结率", "closure rate", {"resolved_of_due": 1}, "due_resolve",
               f"应办结工单中已办结（含逾期办结）的件数 ÷ 应办结数。{_DUE_RESOLVE}"
               "逾期办结计入时限到期的那个统计期。"),
        Figure("on_time_closure_rate", "按期办结率", "on-time closure rate", {"resolved_in_time": 1}, "due_resolve",
               f"按期办结数（在办结时限内办结）÷ 应办结数。{_DUE_RESOLVE}"),
        Figure("resolution_rate", "解决率", "resolution rate", {"callback_resolved": 1}, "callbacks",
               "回访中群众表示问题已解决的件数 ÷ 统计期内回访数。"),
        Figure("satisfaction_rate", "满意率", "satisfaction rate", verdicts, "callback_rated",
               f"（满意 × {weights.satisfied:g} + 基本满意 × {weights.basically_satisfied:g} + 不满意 × "
               f"{weights.dissatisfied:g}）÷ 统计期内作出评价的回访数。"),
        Figure("overdue_rate", "超期率", "overdue rate", {"overdue_resolve": 1}, "due_resolve",
               f"办结超期数（办结时限落在统计期内、到期未办结的，含其后逾期办结的）÷ 应办结数。{_DUE_RESOLVE}"
               "按期办结率与超期率之和为100%。", higher_is_better=False),
        Figure("return_rate", "退单率", "return rate", {"returned": 1}, "routed",
               "统计期内退单数 ÷ 派单数（每次派给主办单位计一次，含退单、改派后重新派单）。", higher_is_better=False),
        Figure("recurrence_rate", "反弹率", "recurrence rate", {"reopened": 1}, "closed",
               "统计期内办结后因问题反复被重新打开的次数 ÷ 统计期内结案数。", higher_is_better=False),
    )


@dataclass(frozen=True)
class HoursFigure:
    """A quantile of the handling times (办理用时: routed → resolved, in working hours)."""

    code: str
    name: str
    name_en: str
    quantile: float
    definition: str  # 口径, in Chinese
    higher_is_better: bool = False
    unit: str = "hours"
    numerator_text: ClassVar[str] = ""  # a quantile, not a ratio
    denominator_text: ClassVar[str] = ""

    def value(self, hours: Iterable[float]) -> float | None:
        return quantile(list(hours), self.quantile)


_HANDLING = "统计期内办结的工单，从首次派单到最近一次办结所用的工作时间（按法定工作日历和办公时间计，小时）"
HOURS_FIGURES: tuple[HoursFigure, ...] = (
    HoursFigure("median_handling_hours", "办理用时中位数", "median handling time (working hours)", 0.5,
                f"{_HANDLING}的中位数。"),
    HoursFigure("p90_handling_hours", "办理用时90分位", "90th percentile handling time (working hours)", 0.9,
                f"{_HANDLING}的90分位数：九成工单在此时间内办结。"),
)


def quantile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` quantile by linear interpolation between the closest ranks (Excel's PERCENTILE.INC,
    numpy's default): the median of 1, 2, 3, 10 is 2.5, their p90 is 7.9. None for no value."""
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    if fraction == 0.5:
        return round(statistics.median(values), 2)
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 2)


class FigureBook:
    """Every figure with the district's configured weights: rates of counts, and quantiles of handling hours."""

    def __init__(self, weights: SatisfactionWeights = SatisfactionWeights()) -> None:
        self.rates = rate_figures(weights)
        self.hours = HOURS_FIGURES
        self.by_code: dict[str, Figure | HoursFigure] = {figure.code: figure for figure in (*self.rates, *self.hours)}

    def values(self, counts: Mapping[str, int], hours: list[float]) -> dict[str, float | None]:
        complete = with_derived(counts)
        return {**{figure.code: figure.value(complete) for figure in self.rates},
                **{figure.code: figure.value(hours) for figure in self.hours}}

    def describe(self, code: str) -> dict[str, object]:
        """What the figure is: its names, unit and 口径 (``definition``; for rates also ``numerator`` and
        ``denominator`` as leaders read them)."""
        figure = self.by_code[code]
        return {"code": figure.code, "name": figure.name, "name_en": figure.name_en, "unit": figure.unit,
                "higher_is_better": figure.higher_is_better, "definition": figure.definition,
                "numerator": figure.numerator_text, "denominator": figure.denominator_text}


def ranking(values: Mapping[str, float | None], higher_is_better: bool) -> list[tuple[str, float]]:
    """Peers ranked best first by one figure; those without a value (nothing to divide by) are left out; ties keep
    the same order every time (by key)."""
    valued = [(key, value) for key, value in values.items() if value is not None]
    return sorted(valued, key=lambda item: (-item[1] if higher_is_better else item[1], item[0]))

