"""Commands on tickets through intake's API (工单指令): 签收, 退单, 延期, 进展, 办结, 回访, 督办, 重新打开, 改派.

A command is published to ``civic.commands`` (keyed by ticket id, acks=all); triage applies it through the ticket
state machine and records its decision. Intake waits briefly for that decision and answers with it: 200 when
applied, 409 with the reason when refused, 202 when triage has not decided yet (ask ``GET /v1/commands/{id}``).
The same ``Command-Id`` sent again gets the same answer and changes nothing twice.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from civicbus.auth import CurrentPrincipal
from civicbus.events import Action, Actor, Amount, Moment, WebUrl, ReturnReason, Satisfaction, TicketCommand, derived_event_id
from civicbus.mongo import COMMAND_RESULTS
from civicbus.refusals import REFUSAL_TEXTS
from civicbus.service import RETRY_AFTER_S
from civicbus.topics import COMMANDS

from .api import publish_acknowledged

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


class ResolveBody(CommandBody):
    result: str = Field(min_length=1, max_length=5000, description="办结情况")
    attachments: list[WebUrl] = Field(default=[], max_length=20, description="http(s) URLs")
    amount_recovered: Amount | None = Field(default=None, description="追回金额 (yuan), e.g. wages paid (欠薪)")


class CallbackBody(CommandBody):
    resolved: bool = Field(description="问题是否解决")
    satisfaction: Satisfaction | None = Field(default=None, description="满意 / 基本满意 / 不满意")


class ReassignBody(CommandBody):
    unit: str = Field(min_length=1, max_length=64, description="the new lead unit's id (改派单位)")


class CommandAnswer(BaseModel):
    command_id: str
    status: str = Field(description="applied, refused or pending")
    transition: str = ""
    state: str = ""
    code: str = ""
    message: str = ""
    message_en: str = ""


# The kernel's limit on a ticket id: a longer one is refused here with 422, not found broken inside the handler.
# Nor blank: the kernel strips it to nothing.
TicketId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$", description="工单号 (ticket id)")]
# An id is printable ASCII (it goes back in the Location header, which is Latin-1).
CommandPath = Annotated[str, Path(max_length=100, pattern=r"^[!-~]+$", description="指令号 (command id)")]
CommandId = Annotated[
    str | None, Header(alias="Command-Id", max_length=100, description="idempotency key of the command")
]


def _answer(command_id: str, record: dict[str, Any] | None) -> JSONResponse:
    if record is None:
        body = CommandAnswer(command_id=command_id, status="pending")
        return JSONResponse(body.model_dump(), status_code=202, headers={"Location": f"/v1/commands/{command_id}"})
    body = CommandAnswer(command_id=command_id, **{key: record.get(key, "") for key in
                                                   ("status", "transition", "state", "code", "message", "message_en")})
    return JSONResponse(body.model_dump(), status_code=200 if record["status"] == "applied" else 409)


async def _send(
    request: Request, ticket_id: str, action: Action, principal: Any, command_id: str | None, **fields: Any
) -> JSONResponse:
    runtime = request.app.state.runtime
    identity = {"event_id": derived_event_id("command", principal.name, command_id)} if command_id else {}
    command = TicketCommand(
        **identity,
        source=f"intake:{principal.name}",
        ticket_id=ticket_id,
        action=action,
        actor=Actor(name=principal.name, role=str(principal.role), unit=principal.unit),
        **{name: value for name, value in fields.items() if value is not None},
    )
    results = runtime.db[COMMAND_RESULTS]
    # Only a Command-Id the caller chose can have been decided already; a fresh id cannot.
    record = await results.find_one({"_id": command.event_id}) if command_id else None
    if record is None:
        try:
            await publish_acknowledged(request, COMMANDS, [command])
        except Exception as error:
            raise HTTPException(503, detail="指令暂未受理：消息队列不可用，请用相同 Command-Id 重试 (Kafka unavailable)",
                                headers={"Retry-After": str(RETRY_AFTER_S)}) from error
        deadline = time.monotonic() + runtime.settings.command_wait_s
        # Answered once triage has also written the ticket (``settled``), so a caller reads what it did; a decision
        # whose ticket write is still under way at the deadline is answered all the same (it will be applied).
        while not (record and record.get("settled")) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_SECONDS)
            record = await results.find_one({"_id": command.event_id})
    return _answer(command.event_id, record)


RESPONSES = {409: {"description": "refused: see the reason codes above"}, 202: {"description": "not decided yet"}}


def _route(path: str, summary: str):  # noqa: ANN202 - a route decorator
    return router.post(path, summary=summary, description=DESCRIPTION, response_model=CommandAnswer,
                       responses=RESPONSES)


@_route("/tickets/{ticket_id}/sign-for", "Sign for a ticket (签收)")
async def sign_for(ticket_id: TicketId, body: CommandBody, request: Request, principal: CurrentPrincipal,
                   command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.sign_for, principal, command_id, note=body.note)


@_route("/tickets/{ticket_id}/return", "Return a misrouted ticket (退单)")
async def return_ticket(ticket_id: TicketId, body: ReturnBody, request: Request, principal: CurrentPrincipal,
                        command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.return_, principal, command_id, note=body.note,
                       return_reason=body.reason)


@_route("/tickets/{ticket_id}/extension-requests", "Ask for more time (申请延期)")
async def request_extension(ticket_id: TicketId, body: ExtensionRequestBody, request: Request,
                            principal: CurrentPrincipal, command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.request_extension, principal, command_id, note=body.note,
                       extension_until=body.until)


@_route("/tickets/{ticket_id}/extension-decisions", "Grant or deny an extension (延期审批)")
async def decide_extension(ticket_id: TicketId, body: ExtensionDecisionBody, request: Request,
                           principal: CurrentPrincipal, command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.decide_extension, principal, command_id, note=body.note,
                       grant=body.grant)


@_route("/tickets/{ticket_id}/notes", "Add a progress note (办理进展)")
async def add_note(ticket_id: TicketId, body: CommandBody, request: Request, principal: CurrentPrincipal,
                   command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.add_note, principal, command_id, note=body.note)


@_route("/tickets/{ticket_id}/resolve", "Report the ticket done (办结)")
async def resolve(ticket_id: TicketId, body: ResolveBody, request: Request, principal: CurrentPrincipal,
                  command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.resolve, principal, command_id, note=body.note,
                       result=body.result, attachments=body.attachments, amount_recovered=body.amount_recovered)


@_route("/tickets/{ticket_id}/callback", "Record the citizen's callback (回访)")
async def record_callback(ticket_id: TicketId, body: CallbackBody, request: Request, principal: CurrentPrincipal,
                          command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.record_callback, principal, command_id, note=body.note,
                       resolved=body.resolved, satisfaction=body.satisfaction)


@_route("/tickets/{ticket_id}/supervise", "Supervise a ticket (督办)")
async def supervise(ticket_id: TicketId, body: CommandBody, request: Request, principal: CurrentPrincipal,
                    command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.supervise, principal, command_id, note=body.note)


@_route("/tickets/{ticket_id}/reopen", "Reopen a resolved or closed ticket (重新打开 / 反弹)")
async def reopen(ticket_id: TicketId, body: CommandBody, request: Request, principal: CurrentPrincipal,
                 command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.reopen, principal, command_id, note=body.note)


@_route("/tickets/{ticket_id}/reassign", "Reassign to another unit (改派)")
async def reassign(ticket_id: TicketId, body: ReassignBody, request: Request, principal: CurrentPrincipal,
                   command_id: CommandId = None) -> JSONResponse:
    return await _send(request, ticket_id, Action.reassign, principal, command_id, note=body.note, unit=body.unit)


@router.get("/commands/{command_id}", response_model=CommandAnswer, summary="What became of a command (指令结果)")
async def get_command(command_id: CommandPath, request: Request, _: CurrentPrincipal) -> JSONResponse:
    record = await request.app.state.runtime.db[COMMAND_RESULTS].find_one({"_id": command_id})
    return _answer(command_id, record)
