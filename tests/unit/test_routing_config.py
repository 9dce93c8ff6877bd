"""Triage's routing.yaml: the sample's tree, and its loader's errors naming the file, the route and the problem —
what triage refuses at start-up and on reload (a new engine reads the file again)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from civicbus.district import District, DistrictConfigError, load_district
from services.triage.decide import TriageEngine
from services.triage.routing_config import AREA_UNIT, Route, load_routing

from .test_district_config import broken, edit_yaml  # noqa: F401 - fixture


def load_error(folder: Path) -> str:
    district = load_district(folder)
    with pytest.raises(DistrictConfigError) as caught:
        load_routing(district)
    return str(caught.value)


def walk_routes(route: Route, parents: tuple[Route, ...] = ()) -> list[tuple[Route, tuple[Route, ...]]]:
    found = [(route, parents)]
    for child in route.routes:
        found += walk_routes(child, (*parents, route))
    return found


def test_routes_leading_with_the_area_require_a_known_area(district: District) -> None:
    root = load_routing(district).route
    assert root.lead is None and root.name == "默认" and root.deadline == "complaint"
    for route, _ in walk_routes(root):
        if route.lead == AREA_UNIT:
            assert 'area!=""' in {str(matcher) for matcher in route.parsed_matchers}, route.name
    assert any(route.continue_ for route, _ in walk_routes(root))


def test_route_with_unknown_lead_names_the_file_and_the_route(broken: Path) -> None:  # noqa: F811
    def change(data: dict[str, Any]) -> None:
        data["route"]["routes"][1]["routes"][0]["lead"] = "nosuchunit"

    edit_yaml(broken / "routing.yaml", change)
    message = load_error(broken)
    assert "routing.yaml" in message
    assert "信访维稳-群体性事件" in message
    assert "'nosuchunit' is not declared in district.yaml" in message


def test_route_with_unknown_leader(broken: Path) -> None:  # noqa: F811
    edit_yaml(broken / "routing.yaml", lambda data: data["route"]["routes"][2].update(leader="nobody"))
    message = load_error(broken)
    assert "routing.yaml: route.routes[2] (安全生产): leader 'nobody' is not declared in district.yaml" in message


def test_invalid_regex_matcher(broken: Path) -> None:  # noqa: F811
    def change(data: dict[str, Any]) -> None:
        data["route"]["routes"][1]["matchers"] = ['category=~"petition\\.(group"']

    edit_yaml(broken / "routing.yaml", change)
    message = load_error(broken)
    assert "routing.yaml" in message
    assert "信访维稳" in message
    assert "invalid regular expression" in message


def test_route_with_unknown_deadline_policy(broken: Path) -> None:  # noqa: F811
    def change(data: dict[str, Any]) -> None:
        data["route"]["routes"][2]["deadline"] = "whenever"

    edit_yaml(broken / "routing.yaml", change)
    message = load_error(broken)
    assert "routing.yaml" in message and "安全生产" in message and "'whenever'" in message


def test_the_shared_files_load_without_routing_yaml_and_triage_does_not(broken: Path) -> None:  # noqa: F811
    """routing.yaml is triage's alone: the kernel neither reads nor needs it; triage's engine refuses to start
    (and, on reload, to replace the engine in force) without a valid one."""
    (broken / "routing.yaml").unlink()
    district = load_district(broken)
    assert not hasattr(district, "routing")
    with pytest.raises(DistrictConfigError, match=r"routing.yaml: file not found"):
        TriageEngine(district)


def test_a_new_engine_reads_the_routing_file_as_it_is_now(broken: Path) -> None:  # noqa: F811
    """What the district watcher does on a change: a new engine, with the routing.yaml just written."""
    district = load_district(broken)
    assert TriageEngine(district).routing.grouping.repeat_window_hours == 168
    edit_yaml(broken / "routing.yaml", lambda data: data.setdefault("grouping", {}).update(repeat_window_hours=24))
    assert TriageEngine(load_district(broken)).routing.grouping.repeat_window_hours == 24
