"""Upstream platforms' work orders (上游工单) — a 12345 hotline platform and the like — translated into complaints by a
mapping file per platform, so a second platform's format is a configuration file, not a code change.

``<config>/upstream/<platform>.yaml`` (versioned) says where each complaint field is found in the platform's JSON
(a JMESPath expression), which value maps translate channel and category codes, which date formats the platform
writes, and which fields are required. Files are validated at start-up and loaded again when the configuration
folder changes (a file that no longer validates leaves the mappings in force); an error names the file, the entry
and the problem. Fields a mapping does not name — an ID number (身份证号) the platform happens to send, say — are
dropped here and never published.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from civicbus import references
from civicbus.district import District, DistrictConfigError, Strict, TimeZoneName, load_config_file
from civicbus.errors import validation_problems
from civicbus.events import ComplaintSubmission

UPSTREAM_FOLDER = "upstream"

# The complaint fields a platform's work order may fill.
TargetField = Literal[
    "external_id", "channel", "caller_name", "caller_phone", "upstream_category", "title", "content", "address",
    "due_at", "occurred_at",
]
DATETIME_FIELDS = {"due_at", "occurred_at"}


class FieldRule(Strict):
    path: str = Field(min_length=1, description="JMESPath expression into the work order, e.g. sxfl.dm")
    required: bool = False
    map: str = Field(default="", description="the value map that translates this field")
    formats: list[str] = Field(default=[], description="strptime formats of a date field (ISO 8601 always works)")
    _compiled: ParsedResult = PrivateAttr()

    @model_validator(mode="after")
    def _compile(self) -> FieldRule:
        try:
            self._compiled = jmespath.compile(self.path)
        except JMESPathError as error:
            raise ValueError(f"path {self.path!r} is not a valid JMESPath expression: {error}") from error
        return self

    def find(self, order: dict[str, Any]) -> Any:
        return self._compiled.search(order)


class ValueMap(Strict):
    values: dict[str, str] = Field(description="the platform's value → civicbus's value")
    unmapped: Literal["keep", "drop", "refuse"] = Field(
        default="refuse", description="a value not in the map: keep it as it is, leave the field empty, or refuse"
    )

    @field_validator("values", mode="before")
    @classmethod
    def _text_keys(cls, values: Any) -> Any:
        # YAML reads 01 as the number 1; the platform sends text. Quoting is required, so say so clearly.
        if isinstance(values, dict) and any(not isinstance(key, str) for key in values):
            raise ValueError("every key must be quoted text, e.g. \"01\": 电话")
        return values


class MappingFile(Strict):
    version: int
    platform: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", max_length=64)
    name: str = Field(min_length=1, description="the platform's name, for people")
    source: str = Field(min_length=1, max_length=200, description="the source of the events made from its orders")
    timezone: TimeZoneName = "Asia/Shanghai"
    fields: dict[TargetField, FieldRule]
    labels: dict[str, FieldRule] = Field(default={}, description="further fields kept as labels (routing matchers)")
    value_maps: dict[str, ValueMap] = {}

    @model_validator(mode="after")
    def _consistent(self) -> MappingFile:
        for needed in ("external_id", "content"):
            rule = self.fields.get(needed)  # type: ignore[call-overload]
            if rule is None or not rule.required:
                raise ValueError(f"fields.{needed} must be mapped and required (the work-order number makes "
                                 "retries the same event; the content is what triage reads)")
        for name, rule in {**self.fields, **self.labels}.items():
            if rule.map and rule.map not in self.value_maps:
                raise ValueError(f"fields.{name}: value map {rule.map!r} is not declared in value_maps")
            if rule.formats and name not in DATETIME_FIELDS:
                raise ValueError(f"fields.{name}: formats apply only to {', '.join(sorted(DATETIME_FIELDS))}")
        return self


class WorkOrderRefused(ValueError):
    """A work order that its mapping cannot translate; ``problems`` say why, per field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Mapping:
    """One platform's validated mapping."""

    def __init__(self, spec: MappingFile) -> None:
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)

    def translate(self, order: dict[str, Any], envelope: dict[str, Any]) -> ComplaintSubmission:
        """The complaint this work order says, or :class:`WorkOrderRefused` naming every problem."""
        problems: list[str] = []
        fields: dict[str, Any] = {"channel": self.spec.platform}
        for target, rule in self.spec.fields.items():
            value = self._value(target, rule, order, problems)
            if value is not None:
                fields[target] = value
        labels = {"platform": self.spec.platform}
        for label, rule in self.spec.labels.items():
            value = self._value(label, rule, order, problems)
            if value is not None:
                labels[label] = str(value)
        if problems:
            raise WorkOrderRefused(problems)
        try:
            return ComplaintSubmission.model_validate({"source": self.spec.source, **envelope, **fields, "labels": labels})
        except ValidationError as error:
            raise WorkOrderRefused(validation_problems(error)) from error

    def _value(self, target: str, rule: FieldRule, order: dict[str, Any], problems: list[str]) -> Any:
        raw = rule.find(order)
        if raw is None or raw == "":
            if rule.required:
                problems.append(f"{rule.path}: 缺少必填字段 (required field missing, for {target})")
            return None
        if isinstance(raw, (dict, list)):
            problems.append(f"{rule.path}: 应为单个值 (a single value is expected, for {target})")
            return None
        text = str(raw).strip()
        if rule.map:
            value_map = self.spec.value_maps[rule.map]
            if text in value_map.values:
                text = value_map.values[text]
            elif value_map.unmapped == "drop":
                return None
            elif value_map.unmapped == "refuse":
                problems.append(f"{rule.path}: 未配置的代码 {text!r} (value not in the {rule.map} map)")
                return None
        if target in DATETIME_FIELDS:
            return self._datetime(text, rule, problems)
        return text

    def _datetime(self, text: str, rule: FieldRule, problems: list[str]) -> datetime | None:
        moment: datetime | None = None
        for pattern in rule.formats:
            try:
                moment = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        if moment is None:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                problems.append(f"{rule.path}: 无法识别的时间 {text!r} (not a date in {rule.formats or 'ISO 8601'})")
                return None
        # A platform writes local time without an offset: it is the platform's time zone.
        return moment if moment.tzinfo else moment.replace(tzinfo=self.zone)


def load_mappings(folder: Path, district: District) -> dict[str, Mapping]:
    """Every ``<folder>/upstream/*.yaml``, validated and cross-checked with the category tree; none if the folder
    does not exist."""
    mappings: dict[str, Mapping] = {}
    upstream = folder / UPSTREAM_FOLDER
    if not upstream.is_dir():
        return mappings
    for path in sorted(upstream.glob("*.yaml")):
        spec = load_config_file(MappingFile, path)
        if spec.platform in mappings:
            raise DistrictConfigError(f"{path}: platform: {spec.platform!r} is already mapped by another file")
        category_rule = spec.fields.get("upstream_category")
        if category_rule and category_rule.map:
            references.require_upstream_codes(district, path, f"value_maps.{category_rule.map}",
                                              spec.value_maps[category_rule.map].values.values())
        mappings[spec.platform] = Mapping(spec)
    return mappings
