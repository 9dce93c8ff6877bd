"""The sub-district's domain configuration (辖区配置) that several services read, and the way every configuration
file is loaded.

Domain data lives in versioned files under one folder (``config/sample`` ships a fictional 示范街道). The kernel
reads the files more than one service needs:

=================  ==========================================================================
``district.yaml``  the sub-district, its leaders (领导) and units (科室 / 村社区 / 站所) with contacts and channels
``areas.geojson``  each village's / community's jurisdiction (辖区范围) and address keywords
``categories.yaml`` the category tree (事项分类) with keyword rules
``deadlines.yaml`` deadline policies (时限) and office hours (triage sets deadlines, notify reminds before them)
=================  ==========================================================================

A file only one service reads is that service's: ``routing.yaml`` (services/triage/routing_config.py),
``notify.yaml`` and each channel's settings (services/notify/config.py, services/notify/channels/),
``reporting.yaml``, ``open311.yaml`` and ``upstream/``. Each service loads its own with :func:`load_config_file` and
checks what they name in the shared files with :mod:`civicbus.references`, so a new routing option or notification
channel is added in the service alone.

Everything is validated when a service starts. A broken file stops the service with a
:class:`DistrictConfigError` that names the file, the entry and the problem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, time
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from civicbus.errors import validation_problems

SUPPORTED_VERSION = 1
ModelT = TypeVar("ModelT", bound=BaseModel)
EntryT = TypeVar("EntryT")


class DistrictConfigError(ValueError):
    """A domain configuration file is invalid; the message names the file, the entry and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- what every file's schema may use

Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=64)]


def _known_zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {zone!r}") from error
    return zone


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]  # an IANA name, e.g. Asia/Shanghai


def _http_url(url: str) -> str:
    if not re.match(r"^https?://[^\s/]+", url):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


HttpUrl = Annotated[str, AfterValidator(_http_url)]  # e.g. a robot's or an SMS gateway's address


# --------------------------------------------------------------------------- district.yaml


class UnitKind(StrEnum):
    department = "department"  # 科室
    village = "village"  # 村
    community = "community"  # 社区
    station = "station"  # 站所


class LeaderRole(StrEnum):
    main = "main"  # 主要领导 (书记, 主任)
    in_charge = "in_charge"  # 分管领导


class ChannelRef(BaseModel):
    """A notification channel as district.yaml gives it to a unit, a contact or a leader: its ``type`` and that
    type's settings. The kernel reads only the type; notify validates the rest against the channel's own schema
    (services/notify/channels/) at start-up and on reload, so a new kind of channel is added in notify alone."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Identifier


class Contact(Strict):
    name: str
    role: str = ""
    phone: str = ""
    email: str = ""
    channels: list[ChannelRef] = Field(default=[], description="this person's own channels (e.g. SMS to the duty phone)")


class Leader(Strict):
    id: Identifier
    name: str
    title: str
    role: LeaderRole
    phone: str = ""
    channels: list[ChannelRef] = []


class Unit(Strict):
    id: Identifier
    name: str
    kind: UnitKind
    leader: Identifier = Field(description="the leader in charge (分管领导 / 联村领导)")
    contacts: list[Contact] = []
    channels: list[ChannelRef] = []

    @property
    def is_area_unit(self) -> bool:
        return self.kind in (UnitKind.village, UnitKind.community)


class DistrictFile(Strict):
    version: int
    name: str
    code: str = Field(default="CB", pattern=r"^[A-Z]{1,6}$", description="prefix of work-order numbers (工单号)")
    timezone: TimeZoneName = "Asia/Shanghai"
    dispatcher: Identifier = Field(description="the unit that dispatches by hand what no rule places (人工派单)")
    leaders: list[Leader]
    units: list[Unit]


# --------------------------------------------------------------------------- areas.geojson


class AreaProperties(Strict):
    unit: Identifier
    name: str
    address_keywords: list[str] = Field(default=[], description="roads, 小区 and landmark names in this area")


AREA_PROPERTIES = TypeAdapter(AreaProperties)


# --------------------------------------------------------------------------- categories.yaml


class Keyword(Strict):
    term: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)


class Category(Strict):
    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")]
    name: str
    keywords: list[Keyword] = []
    exclude: list[str] = Field(default=[], description="phrases that veto this category (e.g. 演练 for a fire drill)")
    upstream_codes: list[str] = Field(default=[], description="category codes sent by the 12345 platform")
    alarm_types: list[str] = Field(default=[], description="alarm types (smoke, water_quality, …) of this category")
    inspection_types: list[str] = Field(default=[], description="inspection lines (安全生产, 生态环保, …)")
    children: list[Category] = []

    @field_validator("keywords", mode="before")
    @classmethod
    def _plain_terms(cls, value: Any) -> Any:
        """Let a plain string stand for a keyword of weight 1."""
        if isinstance(value, list):
            return [{"term": item} if isinstance(item, str) else item for item in value]
        return value


class LearnedModelSettings(Strict):
    """The learned text classifier (``civicbus classifier train``) that triage consults beside the keyword rules."""

    path: str = Field(min_length=1, description="the model file, relative to the configuration folder")
    min_probability: float = Field(
        default=0.6, ge=0, le=1, description="below this the model's answer alone never decides (人工派单)"
    )


class CategoriesFile(Strict):
    version: int
    categories: list[Category]
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    model: LearnedModelSettings | None = Field(default=None, description="the learned classifier, if any")


# --------------------------------------------------------------------------- deadlines.yaml


class Duration(Strict):
    """A span of time: calendar ``hours`` (emergencies run round the clock) or ``working_days`` / ``working_hours``
    counted on the Chinese working calendar (法定节假日 and 调休 working weekends) within office hours."""

    hours: float | None = Field(default=None, gt=0)
    working_hours: float | None = Field(default=None, gt=0)
    working_days: float | None = Field(default=None, gt=0)

    def scaled(self, factor: float) -> Duration:
        return Duration(**{name: value * factor for name, value in self.model_dump(exclude_none=True).items()})

    @model_validator(mode="after")
    def _exactly_one(self) -> Duration:
        given = [name for name in ("hours", "working_hours", "working_days") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of hours, working_hours, working_days")
        return self


class DeadlinePolicy(Strict):
    name: str = Field(description="what staff read, e.g. 紧急事项")
    sign_for: Duration  # 签收时限
    resolve: Duration  # 办结时限


class OfficeHours(Strict):
    start: time = time(8, 30)
    end: time = time(17, 30)

    @model_validator(mode="after")
    def _ordered(self) -> OfficeHours:
        if self.start >= self.end:
            raise ValueError("office hours must start before they end")
        return self


class HeightenedResponse(Strict):
    """The heightened response level (e.g. 一级响应 during a major event or holiday): shorter deadlines and earlier
    escalation for tickets created while it is on."""

    name: str = "一级响应"
    deadline_factor: float = Field(default=0.5, gt=0, le=1, description="deadlines are multiplied by this")
    escalation_factor: float = Field(default=0.5, gt=0, le=1, description="escalation delays are multiplied by this")


class DeadlinesFile(Strict):
    version: int
    office_hours: OfficeHours = OfficeHours()
    holidays: list[date] = Field(
        default=[], description="extra days off, for years chinese-calendar does not know yet (published each winter)"
    )
    working_days: list[date] = Field(default=[], description="extra working days (调休上班), likewise")
    heightened: HeightenedResponse = HeightenedResponse()
    default_policy: Identifier
    severity_policies: dict[str, Identifier] = Field(
        default={}, description="severity → policy that overrides the route's (e.g. critical → emergency)"
    )
    policies: dict[Identifier, DeadlinePolicy]

    @model_validator(mode="after")
    def _policies_exist(self) -> DeadlinesFile:
        severities = {"low", "normal", "high", "critical"}
        for severity in self.severity_policies:
            if severity not in severities:
                raise ValueError(f"severity_policies: unknown severity {severity!r}; known: {', '.join(sorted(severities))}")
        for where, name in [("default_policy", self.default_policy), *self.severity_policies.items()]:
            if name not in self.policies:
                raise ValueError(f"{where}: unknown policy {name!r}; known: {', '.join(self.policies)}")
        return self


# --------------------------------------------------------------------------- the whole configuration


@dataclass(frozen=True)
class Area:
    unit: Unit
    name: str
    geometry: BaseGeometry
    address_keywords: tuple[str, ...]


@dataclass(frozen=True)
class District:
    """The validated configuration of one sub-district, with look-ups by id."""

    folder: Path
    name: str
    code: str
    timezone: str
    dispatcher: Unit
    leaders: dict[str, Leader]
    units: dict[str, Unit]
    areas: tuple[Area, ...]
    categories: CategoriesFile
    deadlines: DeadlinesFile

    def iter_categories(self) -> Iterator[tuple[Category, tuple[Category, ...]]]:
        """Every category with its ancestors, depth first."""

        def walk(nodes: list[Category], parents: tuple[Category, ...]) -> Iterator[tuple[Category, tuple[Category, ...]]]:
            for node in nodes:
                yield node, parents
                yield from walk(node.children, (*parents, node))

        return walk(self.categories.categories, ())

    @cached_property
    def category_by_code(self) -> dict[str, Category]:
        return {category.code: category for category, _ in self.iter_categories()}

    def category_path(self, code: str) -> str:
        """The category's names from the root, e.g. ``安全生产/消防安全``."""
        for category, parents in self.iter_categories():
            if category.code == code:
                return "/".join(node.name for node in (*parents, category))
        return code

    def leader_of(self, unit_id: str) -> Leader:
        return self.leaders[self.units[unit_id].leader]


_ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(:-([^}]*))?\}")


def _expand_env(data: Any) -> Any:
    """``${NAME:-default}`` in a string value becomes the environment's value (deployments point webhooks elsewhere
    and keep secrets out of the files). Values are expanded after parsing, so a comment is never expanded and a
    secret holding ``#`` or ``: `` cannot change the file's structure."""

    def replace(found: re.Match[str]) -> str:
        name, default = found.group(1), found.group(3)
        value = os.environ.get(name)
        if value is None:
            if default is None:
                raise DistrictConfigError(f"environment variable {name} is not set and has no default")
            return default
        return value

    if isinstance(data, str):
        return _ENV_REFERENCE.sub(replace, data)
    if isinstance(data, dict):
        return {key: _expand_env(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_expand_env(value) for value in data]
    return data


def _read(path: Path) -> Any:
    if not path.is_file():
        raise DistrictConfigError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
        return _expand_env(orjson.loads(text) if path.suffix in (".json", ".geojson") else yaml.safe_load(text))
    except DistrictConfigError as error:
        raise DistrictConfigError(f"{path}: {error}") from error
    except (UnicodeDecodeError, yaml.YAMLError, orjson.JSONDecodeError) as error:
        raise DistrictConfigError(f"{path}: cannot be parsed: {error}") from error


def _entry_name(data: Any, location: tuple[int | str, ...], entry: str = "") -> str:
    """``units[3] (id=aj).leader``: the path of a validation error, with the entry's id or name when it has one;
    below ``entry`` when ``data`` is one entry of a file."""
    parts: list[str] = [entry] if entry else []
    node = data
    for step in location:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(f".{step}" if parts else str(step))
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(step, int) and isinstance(node, dict):
            label = node.get("id") or node.get("code") or node.get("name")
            if label:
                parts.append(f" ({label})")
    return "".join(parts) or "(top level)"


def _invalid(path: Path, data: Any, error: ValidationError, entry: str = "") -> DistrictConfigError:
    problems = validation_problems(error, lambda loc: _entry_name(data, loc, entry))
    return DistrictConfigError(f"{path}: {'; '.join(problems)}")


def _validate(model: type[ModelT], path: Path, data: Any) -> ModelT:
    version = data.get("version") if isinstance(data, dict) else None
    if version != SUPPORTED_VERSION:
        raise DistrictConfigError(f"{path}: version {version} is not supported (this civicbus reads version 1)")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _invalid(path, data, error) from error


def load_config_file(model: type[ModelT], path: Path) -> ModelT:
    """Read, expand and validate one versioned configuration file — the way every service loads its own files, so
    every error names the file, the entry and the problem alike."""
    return _validate(model, path, _read(path))


def validate_entry(schema: TypeAdapter[EntryT], path: Path, entry: str, data: Any) -> EntryT:
    """Validate one entry of a file against a schema its loader does not own — a channel of district.yaml against
    notify's channel schemas — with the error worded as :func:`load_config_file` words it."""
    try:
        return schema.validate_python(data)
    except ValidationError as error:
        raise _invalid(path, data, error, entry) from error


def config_error(path: Path, entry: str, problem: str) -> DistrictConfigError:
    """A problem that validation alone cannot see (a duplicate, a missing reference), worded like the others."""
    return DistrictConfigError(f"{path}: {entry}: {problem}")


def load_district(folder: str | Path) -> District:
    """Read and cross-check the shared files of a configuration folder (each service then loads its own)."""
    folder = Path(folder).resolve()
    district_path = folder / "district.yaml"
    district = load_config_file(DistrictFile, district_path)

    leaders: dict[str, Leader] = {}
    for index, leader in enumerate(district.leaders):
        if leader.id in leaders:
            raise config_error(district_path, f"leaders[{index}] ({leader.id})", "duplicate leader id")
        leaders[leader.id] = leader
    units: dict[str, Unit] = {}
    for index, unit in enumerate(district.units):
        entry = f"units[{index}] ({unit.id})"
        if unit.id in units:
            raise config_error(district_path, entry, "duplicate unit id")
        if unit.leader not in leaders:
            raise config_error(district_path, entry, f"leader {unit.leader!r} is not one of the declared leaders")
        units[unit.id] = unit
    if district.dispatcher not in units:
        raise config_error(district_path, "dispatcher", f"unit {district.dispatcher!r} is not declared in units")

    areas_path = folder / "areas.geojson"
    areas = _load_areas(areas_path, units)

    categories_path = folder / "categories.yaml"
    categories = load_config_file(CategoriesFile, categories_path)
    seen_codes: set[str] = set()
    for category in _walk(categories.categories):
        if category.code in seen_codes:
            raise config_error(categories_path, category.code, "duplicate category code")
        seen_codes.add(category.code)

    deadlines_path = folder / "deadlines.yaml"
    deadlines = load_config_file(DeadlinesFile, deadlines_path)

    return District(
        folder=folder,
        name=district.name,
        code=district.code,
        timezone=district.timezone,
        dispatcher=units[district.dispatcher],
        leaders=leaders,
        units=units,
        areas=areas,
        categories=categories,
        deadlines=deadlines,
    )


def _walk(nodes: list[Category]) -> Iterator[Category]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


def _load_areas(path: Path, units: dict[str, Unit]) -> tuple[Area, ...]:
    data = _read(path)
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise DistrictConfigError(f"{path}: expected a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list):
        raise DistrictConfigError(f"{path}: 'features' must be a list of GeoJSON Features")
    areas: list[Area] = []
    seen_units: set[str] = set()
    for index, feature in enumerate(features):
        entry = f"features[{index}]"
        if not isinstance(feature, dict):
            raise config_error(path, entry, "not a GeoJSON Feature object")
        properties = validate_entry(AREA_PROPERTIES, path, f"{entry}.properties", feature.get("properties") or {})
        entry = f"features[{index}] ({properties.unit})"
        unit = units.get(properties.unit)
        if unit is None:
            raise config_error(path, entry, "unit is not declared in district.yaml")
        if not unit.is_area_unit:
            raise config_error(path, entry, f"unit is a {unit.kind}, not a village or community")
        if unit.id in seen_units:
            raise config_error(path, entry, "a second jurisdiction for the same unit (merge them into a MultiPolygon)")
        seen_units.add(unit.id)
        try:
            geometry = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise config_error(path, entry, f"invalid geometry: {error}") from error
        if geometry.geom_type not in ("Polygon", "MultiPolygon") or not geometry.is_valid:
            raise config_error(path, entry, "geometry must be a valid Polygon or MultiPolygon (WGS84 lon/lat)")
        areas.append(Area(unit, properties.name, geometry, tuple(properties.address_keywords)))
    if not areas:
        raise DistrictConfigError(f"{path}: no areas")
    return tuple(areas)
