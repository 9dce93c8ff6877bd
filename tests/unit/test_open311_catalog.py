"""The Open311 catalogue from configuration, its start-up errors, and the spec's XML shapes."""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest

from civicbus.district import DistrictConfigError
from civicbus.settings import DEFAULT_CONFIG_DIR
from services.intake.open311 import Open311Error, render, render_error
from services.intake.open311_catalog import load_catalog


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, folder, ignore=shutil.ignore_patterns("training", "models"))
    return folder


def test_services_are_the_leaf_categories_not_hidden(district):
    catalog = load_catalog(DEFAULT_CONFIG_DIR, district)
    assert catalog is not None
    leaves = {category.code for category, _ in district.iter_categories() if not category.children}
    assert set(catalog.services) == {code for code in leaves if not code.startswith(("petition.", "police."))}
    dust = catalog.services["environment.dust"]
    assert (dust.group, dust.upstream_code, dust.description) == ("生态环保", "0303", "生态环保/扬尘")
    assert [spec.code for _, spec in dust.attributes] == ["ONGOING"], "a root's attribute applies below it"
    assert catalog.services["labor.dispute"].listing()["metadata"] is False


def test_no_open311_file_means_no_open311(config_dir, district):
    (config_dir / "open311.yaml").unlink()
    assert load_catalog(config_dir, district) is None


@pytest.mark.parametrize(("change", "message"), [
    (("hidden: [petition, police]", "hidden: [petition, nowhere]"), "hidden[1]: 'nowhere' is not a category"),
    (("categories: [urban.roads]", "categories: [urban.road]"), "attributes[0] (FACILITY).categories: 'urban.road'"),
    (("datatype: number", "datatype: singlevaluelist"), "values are required for singlevaluelist"),
    (("datatype: number", "datatype: decimal"), "datatype"),
])
def test_a_broken_open311_file_stops_the_start_naming_the_entry(config_dir, district, change, message):
    path = config_dir / "open311.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(*change), encoding="utf-8")
    with pytest.raises(DistrictConfigError) as error:
        load_catalog(config_dir, district)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_service_without_an_upstream_code_stops_the_start(config_dir):
    from civicbus.district import load_district

    path = config_dir / "categories.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace('        upstream_codes: ["0303"]\n', "", 1),
                    encoding="utf-8")
    with pytest.raises(DistrictConfigError, match=r"service environment.dust \(扬尘\) has no upstream_codes"):
        load_catalog(config_dir, load_district(config_dir))


def test_xml_has_the_declaration_item_elements_and_the_spec_error_shape():
    zone = ZoneInfo("Asia/Shanghai")
    body = render("xml", "services", "service", [{"service_code": "a", "metadata": True, "keywords": "路灯"}], zone).body
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<services><service>')
    service = ElementTree.fromstring(body).find("service")
    assert (service.findtext("metadata"), service.findtext("keywords")) == ("true", "路灯")
    error = render_error("xml", Open311Error(400, "缺少 service_code", "lat 无效"))
    assert error.status_code == 400
    assert [(node.findtext("code"), node.findtext("description"))
            for node in ElementTree.fromstring(error.body).findall("error")] == [("400", "缺少 service_code"), ("400", "lat 无效")]
    as_json = render_error("json", Open311Error(403, "api_key 无效"))
    assert as_json.body.decode() == '[{"code":403,"description":"api_key 无效"}]'
