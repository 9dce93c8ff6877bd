"""Triage's routing configuration, ``routing.yaml``: the routing tree (派单规则) modelled on Alertmanager's, and
grouping (合并: alarm storms, 重复件, 反弹). Only triage reads it, so its schema lives here, beside the router
(routing.py) that walks it; what it names in the shared files (units, leaders, deadline policies) is checked by
civicbus.references. Loaded when triage starts and again whenever the configuration folder changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from civicbus import references
from civicbus.district import District, Identifier, Strict, load_config_file

ROUTING_FILE = "routing.yaml"

MATCHER_RE = re.compile(r'^\s*([a-z_][a-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


@dataclass(frozen=True)
class Matcher:
    """One Alertmanager-style matcher on an event label: ``label=value``, ``!=``, ``=~`` (regex), ``!~``."""

    label: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        found = MATCHER_RE.match(text)
        if not found:
            raise ValueError(f'matcher {text!r} is not of the form label=value, label!=value, label=~"regex"')
        label, op, value = found.groups()
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"matcher {text!r}: invalid regular expression: {error}") from error
        return cls(label, op, value)

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        # Anchored like Alertmanager's: the whole label value must match.
        return re.compile(f"^(?:{self.value})$")

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = bool(self._regex.match(actual))
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


AREA_UNIT = "$area"
"""As a lead or assisting unit: the village/community whose jurisdiction the event is in (属地)."""


class Route(Strict):
    name: str
    matchers: list[str] = []
    lead: str | None = Field(default=None, description=f"lead unit (主办) id, or {AREA_UNIT!r} for the area's unit")
    assist: list[str] = Field(default=[], description="assisting units (协办)")
    leader: Identifier | None = Field(default=None, description="leader in charge; default: the lead unit's")
    deadline: Identifier | None = Field(default=None, description="deadline policy name; default: inherited")
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = []

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("matchers")
    @classmethod
    def _parse_matchers(cls, matchers: list[str]) -> list[str]:
        for text in matchers:
            Matcher.parse(text)
        return matchers

    @cached_property
    def parsed_matchers(self) -> tuple[Matcher, ...]:
        return tuple(Matcher.parse(text) for text in self.matchers)


class Grouping(Strict):
    """What counts as the same problem again (合并): alarm storms and repeated complaints (重复件)."""

    alarm_fingerprint: list[Literal["device_id", "alarm_type", "source", "address"]] = Field(
        default=["device_id", "alarm_type"], min_length=1,
        description="alarm fields that together identify one alarm; repeats join its open ticket",
    )
    repeat_window_hours: float = Field(
        default=168, gt=0, description="a complaint about the same category and place within this time is a 重复件"
    )
    recurrence_window_days: float = Field(
        default=30, gt=0, description="such a complaint within this time after 办结 reopens the ticket (反弹)"
    )


class RoutingFile(Strict):
    version: int
    route: Route
    grouping: Grouping = Grouping()

    @model_validator(mode="after")
    def _root_catches_all(self) -> RoutingFile:
        if self.route.matchers:
            raise ValueError("the root route is the default route: it must not have matchers")
        return self


def load_routing(district: District) -> RoutingFile:
    """The routing.yaml of the district's folder, validated and cross-checked with the shared files."""
    path = district.folder / ROUTING_FILE
    routing = load_config_file(RoutingFile, path)
    _check_route(district, path, routing.route, "route")
    return routing


def _check_route(district: District, path: Path, route: Route, entry: str) -> None:
    where = f"{entry} ({route.name})"
    for unit_id in [route.lead, *route.assist]:
        if unit_id is not None and unit_id != AREA_UNIT:
            references.require_unit(district, path, where, unit_id)
    if route.leader is not None:
        references.require_leader(district, path, where, route.leader)
    if route.deadline is not None:
        references.require_deadline_policy(district, path, where, route.deadline)
    for index, child in enumerate(route.routes):
        _check_route(district, path, child, f"{entry}.routes[{index}]")
