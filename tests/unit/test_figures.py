"""Each figure on a hand-checked scenario."""

from services.reporting.figures import FIGURE_BY_CODE, figures_of, ranking

# 劳动保障所 in one week: 10 tickets routed, 8 signed for in time, 6 resolved (5 in time), 4 callbacks
# (3 resolved, 4 rated, 3 satisfied or basically satisfied), 1 missed its resolve deadline, 1 returned,
# 2 closed of which 1 came back.
WEEK = {"routed": 10, "acknowledged_in_time": 8, "resolved": 6, "resolved_in_time": 5, "callbacks": 4,
        "callback_resolved": 3, "callback_rated": 4, "satisfied": 3, "overdue_resolve": 1, "returned": 1,
        "closed": 2, "reopened": 1}


def test_each_figure_is_its_ratio():
    assert figures_of(WEEK) == {
        "response_rate": 0.8, "closure_rate": 0.6, "on_time_closure_rate": 0.8333, "resolution_rate": 0.75,
        "satisfaction_rate": 0.75, "overdue_rate": 0.1, "return_rate": 0.1, "recurrence_rate": 0.5,
    }


def test_no_ticket_is_no_rate_not_zero():
    assert figures_of({})["response_rate"] is None


def test_rankings_put_the_best_first_and_lower_is_better_for_overdue():
    rows = {"xixi": {"routed": 4, "acknowledged_in_time": 4, "overdue_resolve": 2},
            "nantang": {"routed": 5, "acknowledged_in_time": 3, "overdue_resolve": 0},
            "chashan": {}}
    assert ranking(rows, FIGURE_BY_CODE["response_rate"]) == [("xixi", 1.0), ("nantang", 0.6)]
    assert ranking(rows, FIGURE_BY_CODE["overdue_rate"]) == [("nantang", 0.0), ("xixi", 0.5)]
