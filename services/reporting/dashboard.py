"""The leaders' dashboard (数据驾驶舱): one Chinese page drawn with Apache ECharts in the browser.

The page and its scripts carry no data and need no key; the page then reads the JSON API with the key the leader
types in (kept in the tab's sessionStorage, never in a URL the server logs). ECharts comes from npm
(``web/package-lock.json``) and is served from here with the page: no CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from shapely.geometry import mapping

from civicbus.auth import CurrentPrincipal

from .exports import TEMPLATES

STATIC = Path(__file__).parent / "static"
# What the page loads, and nothing else of the package: a fixed list rather than a directory listing.
STATIC_FILES = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "vendor/echarts.min.js": "text/javascript",
}

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", response_class=HTMLResponse, summary="The leaders' dashboard page (数据驾驶舱)")
async def dashboard(
    request: Request,
    refresh: Annotated[int, Query(ge=5, le=3600, description="seconds between refreshes (自动刷新间隔)")] = 60,
) -> HTMLResponse:
    """Query parameters ``period`` (day|week|month|quarter), ``at``, ``kind`` and ``rank_by`` are read by the page
    itself; the API key is typed in or handed over as the URL fragment ``#key=…`` (never sent to the server)."""
    district = request.app.state.runtime.district
    page = TEMPLATES.get_template("dashboard.html").render(
        district=district.name, timezone=district.timezone, refresh_seconds=refresh, static_url="/dashboard/static")
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.get("/dashboard/static/{name:path}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise HTTPException(404, detail=f"没有这个文件 (no such file): {name}")
    path = STATIC / name
    if not path.is_file():
        # Only the vendored ECharts can be missing: it is copied from npm by scripts/setup.sh or the image build.
        raise HTTPException(503, detail=f"{name} 未安装 (not installed): run scripts/setup.sh (npm ci in web/)")
    return FileResponse(path, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/areas.geojson", summary="Villages and communities as GeoJSON, for the map (村社区地图)")
async def areas_geojson(request: Request, _: CurrentPrincipal) -> dict[str, Any]:
    """The jurisdictions of the district configuration, each named by its unit (the map's regions)."""
    district = request.app.state.runtime.district
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"unit": area.unit.id, "name": area.name},
             "geometry": mapping(area.geometry)}
            for area in district.areas
        ],
    }
