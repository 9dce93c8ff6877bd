"""The figures leaders are judged on (PRODUCT.md), each defined once, as a ratio of two counters.

Counters come from the read models (``projections.py``); a figure is computed for any set of counter documents —
a unit, a village/community, a category, the district; a day, a week, any period — by summing first and dividing
once, so a rate over a month is the month's ratio, not an average of daily rates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    code: str
    name: str  # what leaders read
    name_en: str
    numerator: str
    denominator: str
    higher_is_better: bool = True

    def value(self, counts: Mapping[str, int]) -> float | None:
        """The ratio, or None when there is nothing to divide by (no ticket is not a rate of 0 %)."""
        denominator = counts.get(self.denominator, 0)
        return round(counts.get(self.numerator, 0) / denominator, 4) if denominator else None


FIGURES: tuple[Figure, ...] = (
    Figure("response_rate", "响应率", "response rate", "acknowledged_in_time", "routed"),
    Figure("closure_rate", "办结率", "closure rate", "resolved", "routed"),
    Figure("on_time_closure_rate", "按期办结率", "on-time closure rate", "resolved_in_time", "resolved"),
    Figure("resolution_rate", "解决率", "resolution rate", "callback_resolved", "callbacks"),
    Figure("satisfaction_rate", "满意率", "satisfaction rate", "satisfied", "callback_rated"),
    Figure("overdue_rate", "超期率", "overdue rate", "overdue_resolve", "routed", higher_is_better=False),
    Figure("return_rate", "退单率", "return rate", "returned", "routed", higher_is_better=False),
    Figure("recurrence_rate", "反弹率", "recurrence rate", "reopened", "closed", higher_is_better=False),
)
FIGURE_BY_CODE = {figure.code: figure for figure in FIGURES}


def figures_of(counts: Mapping[str, int]) -> dict[str, float | None]:
    return {figure.code: figure.value(counts) for figure in FIGURES}


def ranking(rows: Mapping[str, Mapping[str, int]], figure: Figure) -> list[tuple[str, float]]:
    """Peers ranked best first by one figure; those without a value (nothing to divide by) are left out."""
    valued = [(key, value) for key, counts in rows.items() if (value := figure.value(counts)) is not None]
    return sorted(valued, key=lambda item: (-item[1] if figure.higher_is_better else item[1], item[0]))
