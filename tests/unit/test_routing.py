"""Routing by the tree: matchers, nesting, `continue`, `$area`, defaults."""

from __future__ import annotations

import pytest

from civicbus.district import District
from services.triage.routing import Router, match_routes
from services.triage.routing_config import Matcher, Route, load_routing


@pytest.fixture(scope="module")
def router(district: District) -> Router:
    return Router(district, load_routing(district).route)


def labels(**values: str) -> dict[str, str]:
    return {"kind": "complaint", "source": "12345", "severity": "normal", "area": "", **values}


@pytest.mark.parametrize(
    ("text", "labels_", "expected"),
    [
        ('category="safety.fire"', {"category": "safety.fire"}, True),
        ('category!="safety.fire"', {"category": "safety.fire"}, False),
        (r'category=~"environment\.(water|sewage)"', {"category": "environment.sewage"}, True),
        (r'category=~"environment\.(water|sewage)"', {"category": "environment.sewage2"}, False),  # anchored
        ('area!=""', {"area": ""}, False),
        ('severity!~"low|normal"', {"severity": "critical"}, True),
        ('missing="x"', {}, False),
    ],
)
def test_matchers(text, labels_, expected):
    assert Matcher.parse(text).matches(labels_) is expected


def test_invalid_matcher_is_rejected():
    with pytest.raises(ValueError):
        Matcher.parse("category ~ safety")
    with pytest.raises(ValueError):
        Matcher.parse('category=~"(unclosed"')


def test_continue_lets_later_siblings_match_too():
    tree = Route.model_validate(
        {
            "name": "root",
            "routes": [
                {"name": "a", "matchers": ['x="1"'], "lead": "u1", "continue": True},
                {"name": "b", "matchers": ['x="1"'], "lead": "u2"},
                {"name": "c", "matchers": ['x="1"'], "lead": "u3"},
            ],
        }
    )
    assert [match.route.name for match in match_routes(tree, {"x": "1"})] == ["a", "b"]


def test_nested_route_inherits_from_its_parent():
    tree = Route.model_validate(
        {
            "name": "root",
            "deadline": "complaint",
            "routes": [{"name": "p", "matchers": ['x="1"'], "lead": "u1", "routes": [{"name": "c", "matchers": ['y="2"']}]}],
        }
    )
    (match,) = match_routes(tree, {"x": "1", "y": "2"})
    assert match.names == ["root", "p", "c"]
    assert match.inherited("lead") == "u1" and match.inherited("deadline") == "complaint"


def test_no_match_is_the_root_without_a_lead(router):
    (assignment,) = router.assign(labels(category="other", category_root="other"))
    assert assignment.lead_unit == "" and "没有匹配" in assignment.manual_reason


def test_area_unit_leads_when_the_event_is_located(router):
    (assignment,) = router.assign(
        labels(kind="alarm", category="safety.fire", category_root="safety", area="xixi", alarm_type="smoke")
    )
    assert assignment.lead_unit == "xixi"
    assert "xiaofang" in assignment.assist_units


def test_unlocated_alarm_goes_to_the_department(router):
    (assignment,) = router.assign(
        labels(kind="alarm", category="safety.fire", category_root="safety", alarm_type="smoke")
    )
    assert assignment.lead_unit == "yingji"
    assert "" not in assignment.assist_units, "an unknown area is not an assisting unit"


def test_group_wage_arrears_makes_two_assignments_through_continue(router):
    assignments = router.assign(
        labels(category="labor.wage_arrears", category_root="labor", severity="high", area="nantang")
    )
    assert [a.lead_unit for a in assignments] == ["pingan", "laobao"]
    assert assignments[0].deadline_policy == "emergency"
    assert "nantang" in assignments[0].assist_units


def test_leader_defaults_to_the_lead_units_leader(district, router):
    (assignment,) = router.assign(labels(category="market.food", category_root="market"))
    assert assignment.leader == district.units[assignment.lead_unit].leader


def test_routing_again_after_a_return_matches_on_the_labels_of_the_first_routing(district):
    """A 上级督查 finding routes by its inspection type onto the inspection clock; routed again (here with nobody
    excluded) it must take the same route and policy, not the one its category alone would give."""
    from datetime import UTC, datetime

    from civicbus.events import Inspection, InspectionReported
    from services.triage.decide import TriageEngine
    from services.triage.redispatch import rerouted

    engine = TriageEngine(district)
    event = InspectionReported(source="inspection-app", data=Inspection(
        content="市级下沉督查反馈：工地扬尘未覆盖", inspection_type="上级督查", address="西溪村"))
    (ticket,) = engine.decide(event).tickets
    assert ticket.explanation.route_path[-1] == "生态环保-上级督查" and ticket.deadline_policy == "inspection"

    again = rerouted(engine, ticket, datetime.now(UTC))
    assert again.explanation.route_path == ticket.explanation.route_path
    assert again.deadline_policy == "inspection"
