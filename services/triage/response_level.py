"""The response level (响应级别): normal, or heightened (一级响应) during major events and holidays.

Leaders switch it through triage's API (``civicbus response-level set``); it is stored in MongoDB (``settings``,
one document) so every triage replica follows it, and read every few seconds — never per event. Tickets created
while it is heightened get shorter deadlines (``deadlines.yaml``: ``heightened``) and carry the level, which the
escalation of their notifications follows.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.auth import CurrentPrincipal, Principal, Role, require_roles
from civicbus.events import ResponseLevel
from civicbus.logs import get_logger
from civicbus.mongo import upsert_by_id
from civicbus.service import Runtime

log = get_logger(__name__)
SETTINGS_COLLECTION = "settings"
DOCUMENT_ID = "response_level"
REFRESH_SECONDS = 3.0


class ResponseLevelChange(BaseModel):
    level: ResponseLevel
    reason: str = Field(default="", max_length=500, description="why, e.g. 国庆假期一级响应")


class ResponseLevelRead(BaseModel):
    level: ResponseLevel
    name: str = Field(description="what staff read: 常态 or e.g. 一级响应")
    reason: str = ""
    set_by: str = ""
    set_at: datetime | None = None


class ResponseLevelState:
    def __init__(self, db: AsyncDatabase) -> None:
        self._collection = db[SETTINGS_COLLECTION]
        self.current = ResponseLevel.normal
        self.document: dict[str, Any] = {}

    async def refresh(self) -> ResponseLevel:
        document = await self._collection.find_one({"_id": DOCUMENT_ID}) or {}
        level = ResponseLevel(document.get("level", ResponseLevel.normal))
        if level is not self.current:
            log.info("response level changed", level=str(level), reason=document.get("reason", ""))
        self.current, self.document = level, document
        return level

    async def set(self, change: ResponseLevelChange, principal: Principal) -> None:
        await upsert_by_id(self._collection, {DOCUMENT_ID: {"$set": {
            "level": str(change.level), "reason": change.reason, "set_by": principal.name,
            "set_at": datetime.now(UTC)}}})
        await self.refresh()

    async def follow(self, _: Runtime) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as error:  # MongoDB briefly away: keep the last known level
                log.warning("cannot read the response level", error=str(error))
            await asyncio.sleep(REFRESH_SECONDS)


router = APIRouter(prefix="/v1", tags=["response level"])


def _read(request: Request) -> ResponseLevelRead:
    state: ResponseLevelState = request.app.state.response_level
    heightened = request.app.state.runtime.district.deadlines.heightened
    document = state.document
    return ResponseLevelRead(
        level=state.current,
        name=heightened.name if state.current is ResponseLevel.heightened else "常态",
        reason=document.get("reason", ""),
        set_by=document.get("set_by", ""),
        set_at=document.get("set_at"),
    )


@router.get("/response-level", response_model=ResponseLevelRead, summary="The response level in force (响应级别)")
async def get_response_level(request: Request, _: CurrentPrincipal) -> ResponseLevelRead:
    return _read(request)


@router.put(
    "/response-level",
    response_model=ResponseLevelRead,
    summary="Switch the response level (切换响应级别); leaders and administrators only",
)
async def put_response_level(
    change: ResponseLevelChange,
    request: Request,
    principal: Annotated[Principal, Depends(require_roles(Role.leader, Role.admin))],
) -> ResponseLevelRead:
    await request.app.state.response_level.set(change, principal)
    log.info("response level set", level=str(change.level), by=principal.name, reason=change.reason)
    return _read(request)
