"""Routing (派单) by the configured tree, with Alertmanager's semantics.

An event's labels walk the tree from the root: a route matches when all its matchers hold; its children are
tried in order and the first matching child wins, unless that child says ``continue``, in which case later
siblings are tried too. A route with no matching child is itself the answer. ``lead``, ``assist``, ``leader`` and
``deadline`` are inherited from the nearest ancestor that sets them.

The first match makes the ticket: its lead unit (主办), assisting units (协办), leader in charge and deadline
policy. Matches found through ``continue`` make further tickets of their own (e.g. a group wage-arrears dispute is
both a wage case for 劳动保障所 and an order-keeping case for 综治中心).
"""

from __future__ import annotations

from dataclasses import dataclass

from civicbus.district import District

from .routing_config import AREA_UNIT, Route


@dataclass(frozen=True)
class RouteMatch:
    path: tuple[Route, ...]

    @property
    def route(self) -> Route:
        return self.path[-1]

    @property
    def names(self) -> list[str]:
        return [route.name for route in self.path]

    def inherited(self, attribute: str) -> object:
        for route in reversed(self.path):
            value = getattr(route, attribute)
            if value:
                return value
        return None


@dataclass(frozen=True)
class Assignment:
    """Who handles a ticket, resolved from a route match and the event's area."""

    match: RouteMatch
    lead_unit: str  # "" when no unit can be named: manual dispatch
    assist_units: tuple[str, ...]
    leader: str
    deadline_policy: str | None
    manual_reason: str


def _matches(route: Route, labels: dict[str, str]) -> bool:
    return all(matcher.matches(labels) for matcher in route.parsed_matchers)


def match_routes(root: Route, labels: dict[str, str]) -> list[RouteMatch]:
    def walk(route: Route, parents: tuple[Route, ...]) -> list[RouteMatch]:
        if not _matches(route, labels):
            return []
        path = (*parents, route)
        found: list[RouteMatch] = []
        for child in route.routes:
            child_matches = walk(child, path)
            if child_matches:
                found.extend(child_matches)
                if not child.continue_:
                    break
        return found or [RouteMatch(path)]

    return walk(root, ())


class Router:
    def __init__(self, district: District, root: Route) -> None:
        self._district = district
        self._root = root

    def assign(self, labels: dict[str, str]) -> list[Assignment]:
        area = labels.get("area", "")
        assignments = []
        for match in match_routes(self._root, labels):
            lead = str(match.inherited("lead") or "")
            reason = ""
            if lead == AREA_UNIT:
                lead = area
                if not lead:
                    reason = f"规则“{match.route.name}”由属地主办，但事件位置未能确定"
            elif not lead:
                reason = "没有匹配的派单规则"
            assist_ids = match.inherited("assist") or []
            assist = tuple(
                dict.fromkeys(
                    unit for unit in ((area if unit == AREA_UNIT else unit) for unit in assist_ids)  # type: ignore[union-attr]
                    if unit and unit != lead
                )
            )
            leader = str(match.inherited("leader") or "")
            if not leader and lead:
                leader = self._district.units[lead].leader
            assignments.append(
                Assignment(
                    match=match,
                    lead_unit=lead,
                    assist_units=assist,
                    leader=leader,
                    deadline_policy=match.inherited("deadline"),  # type: ignore[arg-type]
                    manual_reason=reason,
                )
            )
        return assignments
