"""Each figure on a hand-checked scenario; quantiles and satisfaction weights."""

import pytest

from services.reporting.config import SatisfactionWeights
from services.reporting.figures import FigureBook, quantile, ranking, with_derived

# 劳动保障所 in one week: 11 assignments of which 1 returned (10 kept), 8 signed for in time, 6 resolved (5 in
# time), 4 callbacks (3 resolved; 4 rated: 2 满意, 1 基本满意, 1 不满意), 1 missed its resolve deadline, 2 closed of
# which 1 came back; handled in 2, 4, 6 and 20 working hours.
WEEK = {"routed": 11, "returned": 1, "acknowledged_in_time": 8, "resolved": 6, "resolved_in_time": 5,
        "callbacks": 4, "callback_resolved": 3, "callback_rated": 4, "satisfied": 2, "basically_satisfied": 1,
        "dissatisfied": 1, "overdue_resolve": 1, "closed": 2, "reopened": 1}
HOURS = [6.0, 2.0, 20.0, 4.0]


def test_each_figure_on_the_hand_checked_week():
    assert FigureBook().values(WEEK, HOURS) == {
        "response_rate": 0.8,  # 8 / 10 kept
        "closure_rate": 0.6,  # 6 / 10
        "on_time_closure_rate": 0.8333,  # 5 / 6
        "resolution_rate": 0.75,  # 3 / 4
        "satisfaction_rate": 0.75,  # (2 + 1) / 4 with PRODUCT.md's weights 1, 1, 0
        "overdue_rate": 0.1,  # 1 / 10
        "return_rate": 0.0909,  # 1 / 11 assignments
        "recurrence_rate": 0.5,  # 1 / 2
        "median_handling_hours": 5.0,  # (4 + 6) / 2
        "p90_handling_hours": 15.8,  # 6 + 0.7 × (20 − 6)
    }


def test_satisfaction_weights_are_configurable():
    book = FigureBook(SatisfactionWeights(satisfied=1, basically_satisfied=0.8, dissatisfied=0))
    assert book.values(WEEK, [])["satisfaction_rate"] == 0.7  # (2 + 0.8) / 4


def test_no_ticket_is_no_rate_not_zero():
    values = FigureBook().values({}, [])
    assert values["response_rate"] is None and values["median_handling_hours"] is None


def test_kept_is_routed_net_of_returned():
    assert with_derived({"routed": 3, "returned": 1})["kept"] == 2
    assert with_derived({})["kept"] == 0


@pytest.mark.parametrize(("values", "fraction", "expected"), [
    ([7.0], 0.9, 7.0),
    ([1.0, 2.0, 3.0, 10.0], 0.5, 2.5),
    ([1.0, 2.0, 3.0, 10.0], 0.9, 7.9),  # Excel PERCENTILE.INC: 3 + 0.7 × 7
    ([5.0, 1.0, 3.0], 0.5, 3.0),
    ([], 0.5, None),
])
def test_quantiles_interpolate_between_ranks(values, fraction, expected):
    assert quantile(values, fraction) == expected


def test_rankings_put_the_best_first_and_lower_is_better_for_overdue():
    assert ranking({"xixi": 1.0, "nantang": 0.6, "chashan": None}, higher_is_better=True) == [
        ("xixi", 1.0), ("nantang", 0.6)]
    assert ranking({"xixi": 0.5, "nantang": 0.0}, higher_is_better=False) == [("nantang", 0.0), ("xixi", 0.5)]
