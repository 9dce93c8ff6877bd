"""Location: polygons (WGS84 and GCJ-02) and address keywords."""

from __future__ import annotations

import eviltransform
import pytest

from civicbus.events import CoordinateSystem, Location
from services.triage.locate import Locator, to_wgs84


@pytest.fixture(scope="module")
def locator(district) -> Locator:
    return Locator(district)


def _centroid(district, unit_id):
    area = next(area for area in district.areas if area.unit.id == unit_id)
    point = area.geometry.representative_point()
    return point.y, point.x


def test_point_in_polygon(locator, district):
    lat, lon = _centroid(district, "wenchang")
    located = locator.locate(Location(lat=lat, lon=lon), "")
    assert located.area.unit.id == "wenchang"
    assert located.evidence.method == "polygon"


def test_gcj02_coordinates_are_converted_before_matching(locator, district):
    lat, lon = _centroid(district, "hubin")
    gcj_lat, gcj_lon = eviltransform.wgs2gcj(lat, lon)
    # The raw GCJ-02 numbers are hundreds of metres off; read as WGS84 they may fall elsewhere.
    assert abs(gcj_lon - lon) > 0.003
    located = locator.locate(Location(lat=gcj_lat, lon=gcj_lon, crs=CoordinateSystem.gcj02), "")
    assert located.area.unit.id == "hubin"
    assert "GCJ-02" in located.evidence.detail


def test_gcj02_round_trip_is_within_a_metre():
    lat, lon = 30.8412, 120.0523
    gcj_lat, gcj_lon = eviltransform.wgs2gcj(lat, lon)
    back_lon, back_lat = to_wgs84(Location(lat=gcj_lat, lon=gcj_lon, crs=CoordinateSystem.gcj02))
    assert abs(back_lat - lat) < 1e-5 and abs(back_lon - lon) < 1e-5


def test_address_keyword_when_no_coordinates(locator):
    located = locator.locate(None, "东湖路金色家园3幢")
    assert located.area.unit.id == "donghu"
    assert located.evidence.method == "address"
    assert "金色家园" in located.evidence.detail


def test_longest_name_wins(locator, district):
    # 湖滨路 (3 characters) and 锦绣花园 (4) are both in 湖滨社区's list; 文昌路 is 文昌社区's.
    assert locator.locate(None, "文昌路锦绣花园").area.unit.id == "hubin"


def test_outside_every_polygon_falls_back_to_address_then_nothing(locator):
    far = Location(lat=39.9, lon=116.4)
    assert locator.locate(far, "南塘老街").area.unit.id == "nantang"
    nothing = locator.locate(far, "某地")
    assert nothing.area is None and nothing.evidence.method == "none"


def test_the_text_is_searched_when_the_address_is_empty(locator):
    assert locator.locate(None, "", "茶山水库边有人钓鱼").area.unit.id == "chashan"
