"""The Open311 catalogue (服务目录): ``<config>/open311.yaml`` and the category tree made into GeoReport v2 services
and service definitions, validated at start-up like the rest of the configuration and loaded again when the
configuration folder changes (services/intake/app.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from civicbus import references
from civicbus.district import Category, District, DistrictConfigError, Strict, load_config_file

OPEN311_FILE = "open311.yaml"
Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


class AttributeValue(Strict):
    key: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1)


class AttributeSpec(Strict):
    code: str = Field(pattern=r"^[A-Za-z0-9_]{1,50}$")
    categories: list[str] = Field(min_length=1, description="category codes whose services ask this (a root: all below)")
    datatype: Datatype
    required: bool = False
    variable: bool = Field(default=True, description="false: a note shown to the citizen, not a question")
    description: str = Field(min_length=1)
    datatype_description: str = ""
    values: list[AttributeValue] = []

    @model_validator(mode="after")
    def _lists_have_values(self) -> AttributeSpec:
        is_list = self.datatype in ("singlevaluelist", "multivaluelist")
        if is_list != bool(self.values):
            raise ValueError("values are required for singlevaluelist and multivaluelist, and only for them")
        return self


class Open311File(Strict):
    version: int
    jurisdiction_id: str = Field(min_length=1)
    contact: str = ""
    key_service: str = ""
    changeset: datetime
    hidden: list[str] = Field(default=[], description="category codes not offered to citizens (with all below)")
    attributes: list[AttributeSpec] = []


@dataclass(frozen=True)
class Service:
    code: str
    name: str
    description: str
    group: str
    keywords: tuple[str, ...]
    upstream_code: str
    attributes: tuple[tuple[int, AttributeSpec], ...]  # with their order

    def listing(self) -> dict[str, Any]:
        return {
            "service_code": self.code,
            "service_name": self.name,
            "description": self.description,
            "metadata": bool(self.attributes),
            "type": "realtime",
            "keywords": ",".join(self.keywords),
            "group": self.group,
        }

    def definition(self) -> dict[str, Any]:
        return {
            "service_code": self.code,
            "attributes": [
                {
                    "variable": spec.variable,
                    "code": spec.code,
                    "datatype": spec.datatype,
                    "required": spec.required,
                    "datatype_description": spec.datatype_description,
                    "order": order,
                    "description": spec.description,
                    "values": [value.model_dump() for value in spec.values],
                }
                for order, spec in self.attributes
            ],
        }


@dataclass(frozen=True)
class Catalog:
    settings: Open311File
    services: dict[str, Service]


def load_catalog(folder: Path, district: District) -> Catalog | None:
    """The Open311 catalogue, or None when the configuration has no ``open311.yaml`` (Open311 is then off)."""
    path = folder / OPEN311_FILE
    if not path.is_file():
        return None
    settings = load_config_file(Open311File, path)
    for index, code in enumerate(settings.hidden):
        references.require_category(district, path, f"hidden[{index}]", code)
    for index, spec in enumerate(settings.attributes):
        for code in spec.categories:
            references.require_category(district, path, f"attributes[{index}] ({spec.code}).categories", code)
    services: dict[str, Service] = {}
    for category, parents in district.iter_categories():
        lineage = {node.code for node in (*parents, category)}
        if category.children or lineage & set(settings.hidden):
            continue
        if not category.upstream_codes:
            # The service a citizen chooses is passed on as the category's upstream code; without one, triage would
            # classify by the text alone and the choice would be silently ignored.
            raise DistrictConfigError(
                f"{path}: service {category.code} ({category.name}) has no upstream_codes in categories.yaml; "
                "give it one, or list it (or a parent) under hidden")
        attributes = [spec for spec in settings.attributes if lineage & set(spec.categories)]
        codes = [spec.code for spec in attributes]
        if len(codes) != len(set(codes)):
            raise DistrictConfigError(f"{path}: attributes: service {category.code} would ask one code twice: {codes}")
        services[category.code] = _service(category, parents, attributes)
    return Catalog(settings, services)


def _service(category: Category, parents: tuple[Category, ...], attributes: list[AttributeSpec]) -> Service:
    root = parents[0] if parents else category
    return Service(
        code=category.code,
        name=category.name,
        description="/".join(node.name for node in (*parents, category)),
        group=root.name,
        keywords=tuple(keyword.term for keyword in category.keywords),
        upstream_code=category.upstream_codes[0],
        attributes=tuple(enumerate(attributes, start=1)),
    )
