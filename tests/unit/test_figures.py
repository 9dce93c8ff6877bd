"""Each figure on a hand-checked scenario; quantiles and satisfaction weights."""

import pytest

from services.reporting.config import SatisfactionWeights
from services.reporting.figures import FigureBook, quantile, ranking, with_derived

# 劳动保障所 in one week: 11 assignments of which 1 returned; sign-for limits: 8 met, 2 missed (10 应签收, the
# 11th not due yet); resolve limits: 5 met, 3 missed of which 1 resolved late (8 应办结); 6 resolutions in the week
# (one of them late for a limit of the week before); 4 callbacks (3 resolved; 4 rated: 2 满意, 1 基本满意,
# 1 不满意), 2 closed of which 1 came back; handled in 2, 4, 6 and 20 working hours.
WEEK = {"routed": 11, "returned": 1, "acknowledged_in_time": 8, "overdue_sign_for": 2, "resolved": 6,
        "resolved_in_time": 5, "overdue_resolve": 3, "resolved_late": 1, "callbacks": 4, "callback_resolved": 3,
        "callback_rated": 4, "satisfied": 2, "basically_satisfied": 1, "dissatisfied": 1, "closed": 2, "reopened": 1}
HOURS = [6.0, 2.0, 20.0, 4.0]


def test_each_figure_on_the_hand_checked_week():
    assert FigureBook().values(WEEK, HOURS) == {
        "response_rate": 0.8,  # 8 signed in time / (8 + 2 missed) 应签收
        "closure_rate": 0.75,  # (5 in time + 1 late) / (5 + 3 missed) 应办结
        "on_time_closure_rate": 0.625,  # 5 / 8
        "resolution_rate": 0.75,  # 3 / 4
        "satisfaction_rate": 0.75,  # (2 + 1) / 4 with the product's weights (docs/product.md) 1, 1, 0
        "overdue_rate": 0.375,  # 3 missed / 8
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


def test_assignments_not_yet_due_are_no_rate_not_zero():
    values = FigureBook().values({"routed": 9, "created": 9}, [])
    assert [values[code] for code in ("response_rate", "closure_rate", "on_time_closure_rate", "overdue_rate")] == [
        None, None, None, None]


def test_what_was_due_is_what_was_met_and_what_was_missed():
    assert with_derived({"acknowledged_in_time": 3, "overdue_sign_for": 1, "acknowledged": 5})["due_sign_for"] == 4
    derived = with_derived({"resolved_in_time": 2, "overdue_resolve": 3, "resolved_late": 1, "resolved": 7})
    assert (derived["due_resolve"], derived["resolved_of_due"]) == (5, 3)
    assert with_derived({})["due_resolve"] == 0


def test_each_rate_says_its_definition_in_chinese():
    book = FigureBook()
    response = book.describe("response_rate")
    assert (response["numerator"], response["denominator"]) == ("按期签收数", "应签收数")
    assert "尚未到签收时限" in response["definition"]
    for code in ("closure_rate", "on_time_closure_rate", "overdue_rate"):
        assert book.describe(code)["denominator"] == "应办结数" and "应办结" in book.describe(code)["definition"]
    assert all(book.describe(code)["definition"] for code in book.by_code)


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
