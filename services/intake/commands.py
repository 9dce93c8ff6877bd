"""Commands on tickets through intake's API (工单指令): 签收, 退单, 延期, 进展, 办结, 回访, 督办, 重新打开, 改派.

A command is published to ``civic.commands`` (keyed by ticket id, acks=all); triage applies it through the ticket
state machine and announces its decision on ``civic.command-results``, which intake keeps (``command_answers.py``).
Intake waits briefly for that decision and answers with it: 200 when applied, 409 with the reason when refused, 202
when triage has not decided yet (ask ``GET /v1/commands/{id}``). The same ``Command-Id`` sent again gets the same
answer and changes nothing twice.

Every command route is a row of :data:`COMMAND_ROUTES`: its path, what the OpenAPI document says of it, its body and
the action it sends. A ``workbench`` key acts for the person signed in to the workbench, named in ``X-Actor-*``
headers (:func:`person_acting`); any other key acts as itself.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from civicbus.auth import CurrentPrincipal, Principal, Role
from civicbus.events import (
    Action,
    Actor,
    Amount,
    Moment,
    ReturnReason,
    Satisfaction,
    TicketCommand,
    WebUrl,
    derived_event_id,
)
from civicbus.refusals import REFUSAL_TEXTS
from civicbus.service import RETRY_AFTER_S
from civicbus.topics import COMMANDS

from .api import publish_acknowledged
from .command_answers import CommandAnswers

POLL_SECONDS = 0.05

REFUSAL_TABLE = "\n".join(
    f"| `{code}` | {chinese} | {english} |" for code, (chinese, english) in REFUSAL_TEXTS.items()
)
DESCRIPTION = f"""Answers **200** with the transition when triage applied the command, **409** with a reason code
when it refused it, **202** if triage has not decided within a few seconds (then `GET /v1/commands/{{id}}`).
A retried request with the same `Command-Id` header gets the same answer and changes nothing twice.

| code | 中文 | English |
|---|---|---|
{REFUSAL_TABLE}
"""

router = APIRouter(prefix="/v1", tags=["ticket commands (工单指令)"])


class CommandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=2000, description="说明 / 进展 / 理由")


class ReturnBody(CommandBody):
    reason: ReturnReason = Field(description="属地不符 wrong_area, 权属不清 unclear_ownership, 职能交叉 overlapping_duties, 其他 other")


class ExtensionRequestBody(CommandBody):
    until: Moment = Field(description="延期至 (must be later than the current resolve deadline)")


class ExtensionDecisionBody(CommandBody):
    grant: bool = Field(description="同意 true / 不同意 false")


class NoteBody(CommandBody):
    attachments: list[WebUrl] = Field(default=[], max_length=20, description="photos and files: http(s) URLs")


class ResolveBody(CommandBody):
    result: str = Field(min_length=1, max_length=5000, description="办结情况")
    attachments: list[WebUrl] = Field(default=[], max_length=20, description="http(s) URLs")
    amount_recovered: Amount | None = Field(default=None, description="追回金额 (yuan), e.g. wages paid (欠薪)")


class CallbackBody(CommandBody):
    resolved: bool = Field(description="问题是否解决")
    satisfaction: Satisfaction | None = Field(default=None, description="满意 / 基本满意 / 不满意")


class ReassignBody(CommandBody):
    unit: str = Field(min_length=1, max_length=64, description="the new lead unit's id (改派单位)")
    assist_units: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=20,
        description="the assisting units' ids (协办单位); left out: the ticket keeps those it has")


class CommandAnswer(BaseModel):
    command_id: str
    status: str = Field(description="applied, refused or pending")
    transition: str = ""
    state: str = ""
    code: str = ""
    message: str = ""
    message_en: str = ""


@dataclass(frozen=True)
class CommandRoute:
    """``POST /v1/tickets/{ticket_id}/<path>``: one action on a ticket."""

    path: str
    name: str  # the OpenAPI operation's name
    summary: str
    action: Action
    body: type[CommandBody] = CommandBody
    renamed: Mapping[str, str] = field(default_factory=dict)  # body field → the command's, where they differ

    def command_fields(self, body: CommandBody) -> dict[str, Any]:
        return {self.renamed.get(name, name): value for name, value in body if value is not None}


COMMAND_ROUTES = (
    CommandRoute("sign-for", "sign_for", "Sign for a ticket (签收)", Action.sign_for),
    CommandRoute("return", "return_ticket", "Return a misrouted ticket (退单)", Action.return_, ReturnBody,
                 {"reason": "return_reason"}),
    CommandRoute("extension-requests", "request_extension", "Ask for more time (申请延期)", Action.request_extension,
                 ExtensionRequestBody, {"until": "extension_until"}),
    CommandRoute("extension-decisions", "decide_extension", "Grant or deny an extension (延期审批)",
                 Action.decide_extension, ExtensionDecisionBody),
    CommandRoute("notes", "add_note", "Add a progress note (办理进展)", Action.add_note, NoteBody),
    CommandRoute("resolve", "resolve", "Report the ticket done (办结)", Action.resolve, ResolveBody),
    CommandRoute("callback", "record_callback", "Record the citizen's callback (回访)", Action.record_callback,
                 CallbackBody),
    CommandRoute("supervise", "supervise", "Supervise a ticket (督办)", Action.supervise),
    CommandRoute("reopen", "reopen", "Reopen a resolved or closed ticket (重新打开 / 反弹)", Action.reopen),
    CommandRoute("reassign", "reassign", "Reassign to another unit (改派)", Action.reassign, ReassignBody),
)


# The kernel's limit on a ticket id: a longer one is refused here with 422, not found broken inside the handler.
# Nor blank: the kernel strips it to nothing.
TicketId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$", description="工单号 (ticket id)")]
# An id is printable ASCII (it goes back in the Location header, which is Latin-1).
CommandPath = Annotated[str, Path(max_length=100, pattern=r"^[!-~]+$", description="指令号 (command id)")]
CommandId = Annotated[
    str | None, Header(alias="Command-Id", max_length=100, description="idempotency key of the command")
]

# --------------------------------------------------------------------------- the person behind a workbench key

PERSON_ROLES = ("unit", "leader", "admin")
_ACCOUNT = re.compile(r"[!-~]{1,64}")
_UNIT = re.compile(r"[!-~]{0,64}")


def _bad_person(detail: str) -> HTTPException:
    return HTTPException(400, detail=f"操作人信息无效：{detail} (a workbench key must name the person in X-Actor-*)")


def person_acting(account: str | None, name: str | None, role: str | None, unit: str | None) -> Actor:
    """The signed-in person a workbench key acts for, from its ``X-Actor-*`` headers; 400 naming what is wrong."""
    if not account or not _ACCOUNT.fullmatch(account):
        raise _bad_person("X-Actor-Account 须为 1 至 64 个 ASCII 可见字符（登录名）")
    try:
        # Percent-encoded UTF-8: a header is Latin-1, a person's name is Chinese.
        display = unquote(name, errors="strict").strip() if name and name.isascii() else ""
    except UnicodeDecodeError:
        display = ""
    if not display or len(display) > 100 or not display.isprintable():
        raise _bad_person("X-Actor-Name 须为百分号编码的 UTF-8 姓名（1 至 100 字）")
    if role not in PERSON_ROLES:
        raise _bad_person(f"X-Actor-Role 须为 {'、'.join(PERSON_ROLES)} 之一")
    unit = unit or ""
    if not _UNIT.fullmatch(unit) or (role == "unit" and not unit):
        raise _bad_person("X-Actor-Unit 须为单位编号（角色为 unit 时必填）")
    return Actor(name=display, role=role, unit=unit, account=account)


async def command_actor(
    principal: CurrentPrincipal,
    account: Annotated[str | None, Header(alias="X-Actor-Account", description=(
        "workbench keys only: the signed-in person's username (ASCII); ignored for other keys"))] = None,
    name: Annotated[str | None, Header(alias="X-Actor-Name", description=(
        "workbench keys only: the person's name, percent-encoded UTF-8 (e.g. %E5%BC%A0%E4%B8%89 for 张三)"))] = None,
    role: Annotated[str | None, Header(alias="X-Actor-Role", description=(
        "workbench keys only: the person's role in the state machine: unit, leader or admin"))] = None,
    unit: Annotated[str | None, Header(alias="X-Actor-Unit", description=(
        "workbench keys only: the unit the person acts for (required for role unit)"))] = None,
) -> Actor:
    """Who a command is from: the person a workbench key acts for, or the key itself (the headers ignored)."""
    if principal.role is Role.workbench:
        return person_acting(account, name, role, unit)
    return Actor(name=principal.name, role=str(principal.role), unit=principal.unit)


CommandActor = Annotated[Actor, Depends(command_actor)]

# --------------------------------------------------------------------------- sending and answering


def _answer(command_id: str, record: dict[str, Any] | None) -> JSONResponse:
    if record is None:
        body = CommandAnswer(command_id=command_id, status="pending")
        return JSONResponse(body.model_dump(), status_code=202, headers={"Location": f"/v1/commands/{command_id}"})
    body = CommandAnswer(command_id=command_id, **{key: record.get(key, "") for key in
                                                   ("status", "transition", "state", "code", "message", "message_en")})
    return JSONResponse(body.model_dump(), status_code=200 if record["status"] == "applied" else 409)


async def _send(
    request: Request, ticket_id: str, action: Action, principal: Principal, actor: Actor, command_id: str | None,
    fields: dict[str, Any],
) -> JSONResponse:
    runtime = request.app.state.runtime
    answers: CommandAnswers = request.app.state.command_answers
    identity = {"event_id": derived_event_id("command", principal.name, command_id)} if command_id else {}
    command = TicketCommand(**identity, source=f"intake:{principal.name}", ticket_id=ticket_id, action=action,
                            actor=actor, **fields)
    # Only a Command-Id the caller chose can have been decided already; a fresh id cannot.
    record = await answers.find(command.event_id) if command_id else None
    if record is None:
        try:
            await publish_acknowledged(request, COMMANDS, [command])
        except Exception as error:
            raise HTTPException(503, detail="指令暂未受理：消息队列不可用，请用相同 Command-Id 重试 (Kafka unavailable)",
                                headers={"Retry-After": str(RETRY_AFTER_S)}) from error
        # Triage announces a decision once the ticket is written, so a caller reads what its command did.
        deadline = time.monotonic() + runtime.settings.command_wait_s
        while record is None and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            record = await answers.find(command.event_id)
    return _answer(command.event_id, record)


RESPONSES = {409: {"description": "refused: see the reason codes above"}, 202: {"description": "not decided yet"}}


def _endpoint(route: CommandRoute) -> Callable[..., Awaitable[JSONResponse]]:
    async def endpoint(ticket_id: TicketId, body: CommandBody, request: Request, principal: CurrentPrincipal,
                       actor: CommandActor, command_id: CommandId = None) -> JSONResponse:
        return await _send(request, ticket_id, route.action, principal, actor, command_id,
                           route.command_fields(body))

    # FastAPI reads the body's model from the signature: this route's own, to validate it and to document it.
    endpoint.__annotations__ = {**endpoint.__annotations__, "body": route.body}
    return endpoint


for _route in COMMAND_ROUTES:
    router.add_api_route(f"/tickets/{{ticket_id}}/{_route.path}", _endpoint(_route), methods=["POST"],
                         name=_route.name, summary=_route.summary, description=DESCRIPTION,
                         response_model=CommandAnswer, responses=RESPONSES)


@router.get("/commands/{command_id}", response_model=CommandAnswer, summary="What became of a command (指令结果)")
async def get_command(command_id: CommandPath, request: Request, _: CurrentPrincipal) -> JSONResponse:
    return _answer(command_id, await request.app.state.command_answers.find(command_id))
