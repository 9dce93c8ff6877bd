"""Location (定位): which village or community (属地) an event is in.

Coordinates are matched against the jurisdiction polygons (shapely, with a spatial index); coordinates from
Chinese map apps are in GCJ-02 and are converted to WGS84 first (eviltransform). Without coordinates, or outside
every polygon, the address text is matched against the areas' names and address keywords (roads, 小区, landmarks)
with one Aho-Corasick scan; the longest name found wins, so 锦绣花园二期 beats 锦绣花园.
"""

from __future__ import annotations

from dataclasses import dataclass

import ahocorasick
import eviltransform
from shapely import STRtree
from shapely.geometry import Point
from shapely.prepared import prep

from civicbus.district import Area, District
from civicbus.events import CoordinateSystem, Location, LocationEvidence


@dataclass(frozen=True)
class Located:
    area: Area | None
    evidence: LocationEvidence
    place: str = ""
    """The place at the finest grain known: the area and the 小区/road/landmark named, or a ~100 m grid cell.
    Two complaints with the same place (and category) are about the same problem."""


def to_wgs84(location: Location) -> tuple[float, float]:
    """(lon, lat) in WGS84."""
    if location.crs is CoordinateSystem.gcj02:
        lat, lon = eviltransform.gcj2wgs_exact(location.lat, location.lon)
        return lon, lat
    return location.lon, location.lat


class Locator:
    def __init__(self, district: District) -> None:
        self._areas = district.areas
        self._tree = STRtree([area.geometry for area in self._areas])
        self._prepared = [prep(area.geometry) for area in self._areas]
        self._names = ahocorasick.Automaton()
        for area in self._areas:
            for name in {area.name, area.unit.name, *area.address_keywords}:
                self._names.add_word(name, (name, area))
        self._names.make_automaton()

    def locate(self, location: Location | None, address: str, text: str = "") -> Located:
        if location is not None:
            lon, lat = to_wgs84(location)
            point = Point(lon, lat)
            for index in self._tree.query(point):
                if self._prepared[index].covers(point):
                    area = self._areas[index]
                    crs = "GCJ-02→WGS84 " if location.crs is CoordinateSystem.gcj02 else ""
                    # Three decimals of a degree: a cell of about 100 m by 100 m at these latitudes.
                    return Located(
                        area,
                        LocationEvidence(method="polygon", detail=f"{crs}({lon:.6f}, {lat:.6f}) 位于 {area.name}"),
                        place=f"{area.unit.id}@{lat:.3f},{lon:.3f}",
                    )
        for where in (address, text):
            match = self._longest_name(where)
            if match is not None:
                name, area = match
                return Located(
                    area,
                    LocationEvidence(method="address", detail=f"地址含“{name}” → {area.name}"),
                    # A bare village/community name says only "somewhere in the area": no place to group by.
                    place="" if name in (area.name, area.unit.name) else f"{area.unit.id}/{name}",
                )
        detail = "坐标不在辖区内，地址未匹配" if location is not None else "无坐标，地址未匹配"
        return Located(None, LocationEvidence(method="none", detail=detail))

    def _longest_name(self, text: str) -> tuple[str, Area] | None:
        best: tuple[str, Area] | None = None
        for _, (name, area) in self._names.iter(text) if text else ():
            if best is None or len(name) > len(best[0]):
                best = (name, area)
        return best
