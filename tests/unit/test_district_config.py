"""The sample domain configuration (config/sample, the fictional 示范街道) and the loader's error messages."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from shapely.geometry import box
from shapely.ops import unary_union

from civicbus.district import District, DistrictConfigError, UnitKind, load_district

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "sample"
REQUIRED_ROOTS = {
    "petition",
    "safety",
    "environment",
    "labor",
    "property",
    "market",
    "urban",
    "antifraud",
    "business",
    "police",
    "other",
}


@pytest.fixture
def sample() -> District:
    return load_district(SAMPLE)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of the sample that a test may break."""
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE, folder)
    return folder


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    # The raw text is edited, so ${VAR:-default} stays as written and is expanded by the loader.
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def edit_json(path: Path, change: Callable[[Any], None]) -> None:
    data = orjson.loads(path.read_bytes())
    change(data)
    path.write_bytes(orjson.dumps(data))


def load_error(folder: Path) -> str:
    with pytest.raises(DistrictConfigError) as caught:
        load_district(folder)
    return str(caught.value)


# --------------------------------------------------------------------------- the sample


def test_sample_counts(sample: District) -> None:
    area_units = [unit for unit in sample.units.values() if unit.is_area_unit]
    offices = [unit for unit in sample.units.values() if unit.kind in (UnitKind.department, UnitKind.station)]
    assert sample.name == "示范街道"
    assert sample.timezone == "Asia/Shanghai"
    assert sample.code == "SF"
    assert sample.dispatcher.id == "pingan"
    assert len(area_units) >= 10
    assert len(offices) >= 12
    assert len([leader for leader in sample.leaders.values() if leader.role == "main"]) == 2
    assert 6 <= len([leader for leader in sample.leaders.values() if leader.role == "in_charge"]) <= 8


def test_every_unit_has_a_declared_leader_a_contact_and_one_channel(sample: District) -> None:
    for unit in sample.units.values():
        assert unit.leader in sample.leaders, unit.id
        assert sample.leader_of(unit.id).id == unit.leader
        assert 1 <= len(unit.contacts) <= 2, unit.id
        assert [channel.url.rsplit("/", 1)[-1] for channel in unit.channels] == [unit.id]
    for leader in sample.leaders.values():
        assert [channel.url.rsplit("/", 1)[-1] for channel in leader.channels] == [leader.id]


def test_every_area_unit_has_exactly_one_polygon(sample: District) -> None:
    area_units = {unit.id for unit in sample.units.values() if unit.is_area_unit}
    with_polygon = [area.unit.id for area in sample.areas]
    assert sorted(with_polygon) == sorted(area_units)
    for area in sample.areas:
        assert area.geometry.geom_type == "Polygon" and area.geometry.is_valid
        assert area.geometry.exterior.is_ccw, area.unit.id
        assert area.name == area.unit.name
        assert 4 <= len(area.address_keywords) <= 8, area.unit.id


def test_areas_tile_the_district_without_overlaps(sample: District) -> None:
    geometries = [area.geometry for area in sample.areas]
    for first, second in itertools.combinations(geometries, 2):
        assert first.intersection(second).area < 1e-12
    union = unary_union(geometries)
    assert union.symmetric_difference(box(120.00, 30.80, 120.10, 30.88)).area < 1e-12


def test_address_keywords_point_to_one_area(sample: District) -> None:
    keywords = [(keyword, area.unit.id) for area in sample.areas for keyword in area.address_keywords]
    for (one, one_area), (other, other_area) in itertools.permutations(keywords, 2):
        assert one_area == other_area or one not in other, f"{one} ({one_area}) is inside {other} ({other_area})"


def test_required_categories_exist(sample: District) -> None:
    roots = {category.code for category in sample.categories.categories}
    assert REQUIRED_ROOTS <= roots
    for code in ["safety.fire", "safety.gas", "environment.water", "environment.dust", "environment.straw",
                 "environment.sewage", "labor.wage_arrears", "property.flying_wire", "antifraud.report"]:
        assert code in sample.category_by_code, code
    assert sample.category_path("environment.straw") == "生态环保/秸秆焚烧"
    assert not sample.category_by_code["other"].keywords


def test_category_rules_do_not_collide(sample: District) -> None:
    leaves = [category for category, _ in sample.iter_categories() if not category.children]
    terms = [(keyword.term, leaf.code) for leaf in leaves for keyword in leaf.keywords]
    for (one, one_code), (other, other_code) in itertools.permutations(terms, 2):
        assert one_code == other_code or one not in other, f"{one} ({one_code}) is inside {other} ({other_code})"
    for attribute in ("upstream_codes", "alarm_types"):
        values = [value for category, _ in sample.iter_categories() for value in getattr(category, attribute)]
        assert len(values) == len(set(values)), attribute
    alarm_types = {value for category, _ in sample.iter_categories() for value in category.alarm_types}
    assert {"smoke", "fire", "gas", "water_quality", "dust", "straw_burning", "police"} <= alarm_types


def test_deadline_policies(sample: District) -> None:
    deadlines = sample.deadlines
    assert deadlines.default_policy == "complaint"
    assert deadlines.severity_policies == {"critical": "emergency"}
    assert deadlines.policies["emergency"].sign_for.hours == 0.5
    assert deadlines.policies["complaint"].resolve.working_days == 5
    assert deadlines.office_hours.start.isoformat() == "08:30:00"


# --------------------------------------------------------------------------- clear errors


def test_unknown_leader_names_the_file_the_unit_and_the_problem(broken: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["units"][0]["leader"] = "nobody"

    edit_yaml(broken / "district.yaml", change)
    message = load_error(broken)
    assert "district.yaml" in message
    assert "units[0] (dangzheng)" in message
    assert "'nobody' is not one of the declared leaders" in message


def test_deadline_with_two_durations(broken: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["policies"]["complaint"]["resolve"] = {"working_days": 5, "hours": 12}

    edit_yaml(broken / "deadlines.yaml", change)
    message = load_error(broken)
    assert "deadlines.yaml" in message
    assert "policies.complaint.resolve" in message
    assert "exactly one of hours, working_hours, working_days" in message


def test_invalid_polygon(broken: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        # a bow tie: the ring crosses itself
        data["features"][0]["geometry"]["coordinates"] = [
            [[120.00, 30.85], [120.02, 30.87], [120.02, 30.85], [120.00, 30.87], [120.00, 30.85]]
        ]

    edit_json(broken / "areas.geojson", change)
    message = load_error(broken)
    assert "areas.geojson" in message
    assert "features[0] (xixi)" in message
    assert "valid Polygon" in message


def test_area_of_a_department_is_refused(broken: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["features"][0]["properties"]["unit"] = "yingji"

    edit_json(broken / "areas.geojson", change)
    message = load_error(broken)
    assert "areas.geojson" in message and "features[0] (yingji)" in message and "not a village or community" in message


def test_unsupported_version(broken: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["version"] = 2

    edit_yaml(broken / "categories.yaml", change)
    message = load_error(broken)
    assert "categories.yaml" in message
    assert "version 2 is not supported" in message


def test_unknown_dispatcher(broken: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["dispatcher"] = "nosuchunit"

    edit_yaml(broken / "district.yaml", change)
    message = load_error(broken)
    assert "district.yaml" in message and "dispatcher" in message and "'nosuchunit'" in message


def test_extra_keys_are_refused(broken: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["units"][1]["telephone"] = "13800000000"

    edit_yaml(broken / "district.yaml", change)
    message = load_error(broken)
    assert "district.yaml" in message and "units[1] (pingan).telephone" in message


# --------------------------------------------------------------------------- ${VAR:-default}


def test_webhook_base_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICBUS_WEBHOOK_BASE", "https://robots.example.org/hook")
    district = load_district(SAMPLE)
    assert district.units["yingji"].channels[0].url == "https://robots.example.org/hook/robot/yingji"
    assert district.leaders["wangjianguo"].channels[0].url == "https://robots.example.org/hook/leader/wangjianguo"


def test_webhook_base_default_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIVICBUS_WEBHOOK_BASE", raising=False)
    district = load_district(SAMPLE)
    assert district.units["xixi"].channels[0].url == "http://127.0.0.1:18080/robot/xixi"


def test_variable_without_default_must_be_set(broken: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIVICBUS_TEST_UNSET", raising=False)
    path = broken / "district.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("name: 示范街道", "name: ${CIVICBUS_TEST_UNSET}"), "utf-8")
    message = load_error(broken)
    assert "district.yaml" in message and "CIVICBUS_TEST_UNSET is not set" in message


def test_comments_are_not_expanded_and_values_cannot_change_the_structure(
    broken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CIVICBUS_TEST_UNSET", raising=False)
    monkeypatch.setenv("CIVICBUS_TEST_NAME", "示范街道 # 测试: {x}")
    path = broken / "district.yaml"
    text = path.read_text(encoding="utf-8").replace("name: 示范街道", "name: ${CIVICBUS_TEST_NAME}")
    path.write_text("# set ${CIVICBUS_TEST_UNSET} in production\n" + text, "utf-8")
    assert load_district(broken).name == "示范街道 # 测试: {x}"


def test_a_broken_reporting_file_names_the_entry_and_the_problem(tmp_path):
    from services.reporting.config import load_reporting_config

    (tmp_path / "reporting.yaml").write_text("version: 1\nsatisfaction_weights:\n  basically_satisfied: 1.5\n")
    with pytest.raises(DistrictConfigError, match=r"reporting.yaml: satisfaction_weights.basically_satisfied"):
        load_reporting_config(tmp_path)
    assert load_reporting_config(tmp_path / "absent").satisfaction_weights.basically_satisfied == 1.0
