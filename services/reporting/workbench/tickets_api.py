"""The tickets of the workbench: lists by tab, a ticket's detail, its actions (sent to intake), its files, and the
units to dispatch to (``/workbench/api/tickets…``, ``/files/…``, ``/units``).

Reads come from reporting's views; every write is a command to intake's command API, decided by triage's state
machine (see :mod:`.intake`). A 承办人 asking for another unit's ticket, its files or its actions is answered 404,
as for a ticket that does not exist.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Header, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile  # what request.form() holds (FastAPI's is a subclass)

from civicbus.events import Amount, ReturnReason, Satisfaction, derived_event_id

from ..api import as_shown_to
from ..exports import content_disposition
from ..projections import TICKET_VIEWS
from ..report import Reports
from .attachments import ALLOWED_TYPES, sniff_type
from .intake import IntakeUnavailable
from .people import ActingPerson, CurrentPerson, Person, district, workbench
from .tickets import (
    ACTION_NAMES,
    DONE_MESSAGES,
    ROLE_ACTIONS,
    ROLE_TABS,
    TAB_NAMES,
    allowed_actions,
    explanation_lines,
    list_item,
    local_time,
    may_see,
    scope_query,
    state_name,
    tab_contents,
    timeline_entry,
)
from .validation import parse

router = APIRouter(prefix="/workbench/api", tags=["workbench (工单处置工作台)"])
MAX_FILES = 20  # a command carries at most 20 attachment links
MULTIPART_OVERHEAD = 16 * 1024  # the form's own bytes around the file


def _reports(request: Request) -> Reports:
    return request.app.state.reports


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(district(request).timezone)


def _shown(request: Request, person: Person, ticket: dict[str, Any]) -> dict[str, Any]:
    return as_shown_to(person.principal, ticket, district(request).dispatcher.id)


def _missing(ticket_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"工单 {ticket_id} 不存在")


async def _visible(request: Request, person: Person, ticket_id: str) -> dict[str, Any]:
    """The ticket with its timeline, if this person may see it; else 404 as for a ticket that does not exist."""
    view = await _reports(request).ticket(ticket_id)
    if view is None or not may_see(person.viewer(district(request)), view):
        raise _missing(ticket_id)
    return view


def _searched(item: dict[str, Any], q: str) -> bool:
    return any(q in str(item.get(field) or "") for field in ("ticket_id", "title", "content", "address"))


@router.get("/tickets", summary="My tickets by tab, with each tab's count (我的工单)")
async def list_tickets(
    request: Request,
    person: CurrentPerson,
    tab: Annotated[str, Query(max_length=30, description="one of the role's tabs; default its first")] = "",
    q: Annotated[str, Query(max_length=100, description="text in the number, title, content or address, as "
                                                        "the person is shown them")] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> dict[str, Any]:
    viewer = person.viewer(district(request))
    tabs = ROLE_TABS[viewer.role]
    tab = tab or tabs[0]
    if tab not in tabs:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"没有这个分页：{tab}（可选：{'、'.join(tabs)}）")
    zone, now = _zone(request), datetime.now(UTC)
    projection = {"timeline": 0, "notifications": 0, "explanation": 0, "repeats": 0}
    # One query for every tab: the tickets this person may see, each tab then counted from them.
    views = [view async for view in request.app.state.runtime.db[TICKET_VIEWS].find(scope_query(viewer),
                                                                                      projection=projection)]
    if q:  # matched as shown: a number the person sees masked is not found by its digits
        views = [view for view in views if _searched(_shown(request, person, view), q)]
    contents = tab_contents(viewer, views, now)
    unit_name = _reports(request).unit_name
    return {
        "tab": tab,
        "tabs": {name: len(items) for name, items in contents.items()},
        "tab_names": {name: TAB_NAMES[name] for name in tabs},
        "items": [_shown(request, person, list_item(view, unit_name, zone)) for view in contents[tab][:limit]],
    }


def _local(value: Any, zone: ZoneInfo) -> Any:
    if isinstance(value, datetime):
        return local_time(value, zone)
    if isinstance(value, dict):
        return {key: _local(item, zone) for key, item in value.items()}
    if isinstance(value, list):
        return [_local(item, zone) for item in value]
    return value


@router.get("/tickets/{ticket_id}", summary="A ticket: timeline, why it came here, files, the actions allowed")
async def ticket_detail(ticket_id: str, request: Request, person: CurrentPerson) -> dict[str, Any]:
    view = await _visible(request, person, ticket_id)
    where, zone = district(request), _zone(request)
    shown = _shown(request, person, view)
    files = await workbench(request).attachments.of_ticket(view["ticket_id"])
    base_url = workbench(request).settings.public_base_url
    unit_name = _reports(request).unit_name
    actions = allowed_actions(person.viewer(where), view, datetime.now(UTC))
    return {
        **_local(shown, zone),
        "state_name": state_name(view["state"]),
        "lead_unit_name": unit_name(view["lead_unit"]) if view.get("lead_unit") else "",
        "assist_unit_names": [unit_name(unit) for unit in view.get("assist_units", [])],
        "leader_name": where.leaders[view["leader"]].name if view.get("leader") in where.leaders else "",
        "timeline": [timeline_entry(entry, zone) for entry in shown["timeline"]],
        "explanation_lines": explanation_lines(shown),
        "attachments": [stored.as_json(base_url) for stored in files],
        "actions": [{"action": action, "name": ACTION_NAMES[action]} for action in actions],
    }


# ---------------------------------------------------------------------------------------------------- actions


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    note: str = Field(default="", max_length=2000)


class ReturnBody(_Body):
    reason: ReturnReason


class ExtensionBody(_Body):
    until: datetime = Field(description="延期至; without an offset: the district's local time")


class NoteBody(_Body):
    note: str = Field(min_length=1, max_length=2000)
    files: list[str] = Field(default=[], max_length=MAX_FILES)


class ResolveBody(_Body):
    result: str = Field(min_length=1, max_length=5000)
    files: list[str] = Field(default=[], max_length=MAX_FILES)
    amount_recovered: Amount | None = None


class AssignBody(_Body):
    unit: str = Field(min_length=1, max_length=64)
    assist_units: list[str] | None = Field(default=None, max_length=20, description="left out: kept as they are")


class CallbackBody(_Body):
    resolved: bool
    satisfaction: Satisfaction | None = None


class DecisionBody(_Body):
    grant: bool


ACTION_BODIES: dict[str, type[_Body]] = {
    "sign_for": _Body, "supervise": _Body, "return": ReturnBody, "request_extension": ExtensionBody,
    "add_note": NoteBody, "assist_feedback": NoteBody, "resolve": ResolveBody, "assign": AssignBody,
    "reassign": AssignBody, "record_callback": CallbackBody, "decide_extension": DecisionBody,
}


async def _file_urls(request: Request, ticket_id: str, file_ids: list[str]) -> list[str]:
    store = workbench(request)
    urls = []
    for file_id in dict.fromkeys(file_ids):
        stored = await store.attachments.find(file_id)
        if stored is None or stored.ticket_id != ticket_id:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"附件 {file_id} 不存在，请重新上传")
        urls.append(stored.as_json(store.settings.public_base_url)["url"])
    return urls


async def _command_body(request: Request, ticket_id: str, action: str, body: _Body) -> dict[str, Any]:
    """What intake's command endpoint takes for this action (attachment links only when there are some)."""
    command: dict[str, Any] = {"note": body.note}
    if isinstance(body, ReturnBody):
        command["reason"] = str(body.reason)
    elif isinstance(body, ExtensionBody):
        until = body.until if body.until.tzinfo else body.until.replace(tzinfo=_zone(request))
        command["until"] = until.isoformat()
    elif isinstance(body, ResolveBody):
        command.update(result=body.result, attachments=await _file_urls(request, ticket_id, body.files))
        if body.amount_recovered is not None:
            command["amount_recovered"] = body.amount_recovered
    elif isinstance(body, NoteBody):
        if body.files:
            command["attachments"] = await _file_urls(request, ticket_id, body.files)
    elif isinstance(body, AssignBody):
        command["unit"] = body.unit
        if body.assist_units is not None:
            command["assist_units"] = list(dict.fromkeys(body.assist_units))
    elif isinstance(body, CallbackBody):
        command.update(resolved=body.resolved, satisfaction=str(body.satisfaction) if body.satisfaction else None)
    elif isinstance(body, DecisionBody):
        command["grant"] = body.grant
    return command


@router.post("/tickets/{ticket_id}/actions/{action}",
             summary="Act on a ticket (签收、退单、申请延期、进展、办结、协办意见、派单、改派、回访、延期审批、督办)")
async def act(
    ticket_id: str,
    action: str,
    request: Request,
    person: ActingPerson,
    body: Annotated[dict[str, Any], Body(default_factory=dict, description="the action's fields")],
    request_id: Annotated[str, Header(alias="X-Request-Id", max_length=100,
                                      description="the same id again (a double click) is applied once")] = "",
) -> JSONResponse:
    """Sent to intake's command API with the person; 200 applied, 409 refused by the state machine with its
    reason (nothing changed), 202 still being decided."""
    if action not in ACTION_NAMES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"没有这个操作：{action}")
    if action not in ROLE_ACTIONS[person.account.role]:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"您的岗位不能执行“{ACTION_NAMES[action]}”")
    view = await _visible(request, person, ticket_id)
    store = workbench(request)
    if not store.intake.configured:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="工作台未配置：缺少受理服务密钥，请联系管理员")
    parsed = parse(ACTION_BODIES[action], body)
    command = await _command_body(request, view["ticket_id"], action, parsed)
    username = person.account.username
    command_id = derived_event_id("workbench", username, view["ticket_id"], action, request_id or str(uuid.uuid4()))
    try:
        answer = await store.intake.command(view["ticket_id"], action, command, person.account, command_id)
    except IntakeUnavailable as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(error)) from None
    files = getattr(parsed, "files", [])
    if answer.status_code in (200, 202) and files:
        await store.attachments.attached(list(dict.fromkeys(files)))
    if answer.status_code == 200:
        return JSONResponse({"status": "applied", "message": DONE_MESSAGES[action],
                             "state": answer.body.get("state", ""), "state_name": state_name(answer.body.get(
                                 "state", "")), "command_id": command_id})
    if answer.status_code == 202:
        return JSONResponse({"status": "pending", "message": "已提交，正在处理，请稍后刷新查看结果",
                             "command_id": command_id}, status_code=202)
    if answer.status_code == 409:
        return JSONResponse({"detail": answer.body.get("message") or "操作未被受理", "code": answer.body.get("code", "")},
                            status_code=409)
    if answer.status_code == 404:
        raise _missing(ticket_id)
    if answer.status_code == 422:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="提交的内容不符合要求，请检查后重试")
    raise HTTPException(status.HTTP_502_BAD_GATEWAY,
                        detail=f"受理服务未接受工作台的请求（{answer.status_code}）：{answer.body.get('detail', '')}")


# ---------------------------------------------------------------------------------------------------- files


@router.post("/tickets/{ticket_id}/files", summary="Upload a photo or PDF for a ticket (上传附件)")
async def upload(ticket_id: str, request: Request, person: ActingPerson) -> dict[str, Any]:
    """Multipart field ``file``: JPEG, PNG, WebP or PDF (told by the bytes, not the name), at most
    ``attachment_max_bytes``; the answer's ``id`` goes in an action's ``files``."""
    view = await _visible(request, person, ticket_id)
    store = workbench(request)
    limit = store.settings.attachment_max_bytes
    too_large = HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                              detail=f"附件过大：不能超过 {limit / 1024 / 1024:g} MB")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise too_large  # refused before a byte of it is read
    form = await request.form(max_files=1, max_fields=1)
    upload_file = form.get("file")
    if not isinstance(upload_file, UploadFile):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="请求内容有误：缺少文件（表单字段 file）")
    data = await upload_file.read(limit + 1)
    if len(data) > limit:
        raise too_large
    content_type = sniff_type(data[:16])
    if content_type is None:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            detail=f"只能上传{'、'.join(ALLOWED_TYPES.values())}")
    stored = await store.attachments.add(view["ticket_id"], upload_file.filename or "", content_type, data,
                                         person.account.username)
    return stored.as_json(store.settings.public_base_url)


@router.get("/files/{file_id}", summary="A ticket's file (附件), to those who may see the ticket")
async def download(file_id: str, request: Request, person: CurrentPerson) -> Response:
    store = workbench(request)
    stored = await store.attachments.find(file_id)
    missing = HTTPException(status.HTTP_404_NOT_FOUND, detail="附件不存在")
    if stored is None:
        raise missing
    view = await _reports(request).ticket(stored.ticket_id)
    if view is None or not may_see(person.viewer(district(request)), view):
        raise missing
    data = await store.attachments.store.get(file_id)
    if data is None:
        raise missing
    extension = stored.content_type.rsplit("/", 1)[-1].replace("jpeg", "jpg")
    return Response(data, media_type=stored.content_type, headers={
        "Content-Disposition": content_disposition(stored.name, f"attachment-{file_id}.{extension}"),
        "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"})


@router.get("/units", summary="The district's units (单位), for 派单 and 改派")
async def units(request: Request, _: CurrentPerson) -> list[dict[str, str]]:
    return [{"id": unit.id, "name": unit.name, "kind": str(unit.kind)} for unit in district(request).units.values()]
