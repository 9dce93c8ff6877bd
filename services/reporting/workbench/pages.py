"""The workbench's page (工单处置工作台): one Chinese single-page app served with its own script and styles, no
inline script (the strict CSP of ``civicbus/security.py`` applies). The page holds no data; it signs in and reads
``/workbench/api``. ``/workbench/tickets/{id}`` is the same page opening that ticket after sign-in — the link in
notify's messages (``{public_base_url}/workbench/tickets/{id}``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import FileResponse, HTMLResponse

from ..dashboard import STATIC
from ..exports import TEMPLATES

# What the page loads, and nothing else of the package: a fixed list rather than a directory listing.
STATIC_FILES = {"workbench.js": "text/javascript", "workbench.css": "text/css"}

router = APIRouter(tags=["workbench (工单处置工作台)"])


def _page(request: Request, ticket_id: str) -> HTMLResponse:
    district = request.app.state.runtime.district
    page = TEMPLATES.get_template("workbench.html").render(
        district=district.name, timezone=district.timezone, static_url="/workbench/static", ticket_id=ticket_id)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/workbench", response_class=HTMLResponse, summary="The workbench page (工单处置工作台)")
async def workbench_page(request: Request) -> HTMLResponse:
    return _page(request, "")


@router.get("/workbench/tickets/{ticket_id}", response_class=HTMLResponse,
            summary="The workbench page opening one ticket (notify's links point here)")
async def ticket_page(request: Request,
                      ticket_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]) -> HTMLResponse:
    return _page(request, ticket_id)


@router.get("/workbench/static/{name}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise HTTPException(404, detail=f"没有这个文件：{name}")
    return FileResponse(STATIC / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"})
