"""The figures leaders are judged on (PRODUCT.md), each defined once, here.

Counts come from the read models (``projections.py``); a figure is computed for any sum of counter documents — a
unit, a village/community, a category, a source, the district; a day, a week, any period — by summing first and
dividing once, so a rate over a month is the month's ratio, not an average of daily rates.

``routed`` counts each assignment of a ticket to a lead unit (the first one, and each one after a return or a
reassignment), credited to that unit; ``kept`` = routed − returned are the assignments the unit kept, which is
what response, closure and overdue rates divide by: a ticket returned by one unit and handled by the next counts
once for the district, and not against the unit that rightly returned it (its 退单率 shows the return).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import SatisfactionWeights

COUNT_FIELDS: tuple[str, ...] = (
    "created", "manual", "routed", "assisted", "repeats", "returned", "acknowledged", "acknowledged_in_time",
    "resolved", "resolved_in_time", "callbacks", "callback_resolved", "callback_rated", "satisfied",
    "basically_satisfied", "dissatisfied", "closed", "reopened", "supervised", "overdue_sign_for",
    "overdue_resolve", "notified", "notify_failed",
)
"""The counts the counter documents hold (see projections.ticket_increments)."""


def with_derived(counts: Mapping[str, int]) -> dict[str, int]:
    """Every count field (0 when absent) plus the derived ``kept`` (assignments not returned)."""
    complete = {name: int(counts.get(name, 0)) for name in COUNT_FIELDS}
    complete["kept"] = max(complete["routed"] - complete["returned"], 0)
    return complete


@dataclass(frozen=True)
class Figure:
    code: str
    name: str  # what leaders read
    name_en: str
    numerator: Mapping[str, float]  # count → weight
    denominator: str
    higher_is_better: bool = True
    unit: str = "rate"

    def value(self, counts: Mapping[str, int]) -> float | None:
        """The ratio, or None when there is nothing to divide by (no ticket is not a rate of 0 %)."""
        denominator = counts.get(self.denominator, 0)
        if not denominator:
            return None
        numerator = sum(weight * counts.get(name, 0) for name, weight in self.numerator.items())
        return round(numerator / denominator, 4)


def rate_figures(weights: SatisfactionWeights = SatisfactionWeights()) -> tuple[Figure, ...]:
    """The eight rates; 满意率 weighs each verdict by the configured weights (config/…/reporting.yaml)."""
    return (
        Figure("response_rate", "响应率", "response rate", {"acknowledged_in_time": 1}, "kept"),
        Figure("closure_rate", "办结率", "closure rate", {"resolved": 1}, "kept"),
        Figure("on_time_closure_rate", "按期办结率", "on-time closure rate", {"resolved_in_time": 1}, "resolved"),
        Figure("resolution_rate", "解决率", "resolution rate", {"callback_resolved": 1}, "callbacks"),
        Figure("satisfaction_rate", "满意率", "satisfaction rate",
               {"satisfied": weights.satisfied, "basically_satisfied": weights.basically_satisfied,
                "dissatisfied": weights.dissatisfied}, "callback_rated"),
        Figure("overdue_rate", "超期率", "overdue rate", {"overdue_resolve": 1}, "kept", higher_is_better=False),
        Figure("return_rate", "退单率", "return rate", {"returned": 1}, "routed", higher_is_better=False),
        Figure("recurrence_rate", "反弹率", "recurrence rate", {"reopened": 1}, "closed", higher_is_better=False),
    )


@dataclass(frozen=True)
class HoursFigure:
    """A quantile of the handling times (办理用时: routed → resolved, in working hours)."""

    code: str
    name: str
    name_en: str
    quantile: float
    higher_is_better: bool = False
    unit: str = "hours"

    def value(self, hours: Iterable[float]) -> float | None:
        return quantile(list(hours), self.quantile)


HOURS_FIGURES: tuple[HoursFigure, ...] = (
    HoursFigure("median_handling_hours", "办理用时中位数", "median handling time (working hours)", 0.5),
    HoursFigure("p90_handling_hours", "办理用时90分位", "90th percentile handling time (working hours)", 0.9),
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
        figure = self.by_code[code]
        return {"code": figure.code, "name": figure.name, "name_en": figure.name_en, "unit": figure.unit,
                "higher_is_better": figure.higher_is_better}


def ranking(values: Mapping[str, float | None], higher_is_better: bool) -> list[tuple[str, float]]:
    """Peers ranked best first by one figure; those without a value (nothing to divide by) are left out; ties keep
    the same order every time (by key)."""
    valued = [(key, value) for key, value in values.items() if value is not None]
    return sorted(valued, key=lambda item: (-item[1] if higher_is_better else item[1], item[0]))

