"""The workbench's one way to change a ticket: intake's command API (``POST /v1/tickets/{id}/<command>``), called
with the ``workbench`` key and the person in ``X-Actor-*`` headers. Triage's state machine decides, as for every
other command; the workbench only translates its answer for people."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from .accounts import Account, machine_role

TIMEOUT_S = 15.0  # intake itself waits a few seconds for triage's decision before answering 202
COMMAND_PATHS = {
    "sign_for": "sign-for",
    "return": "return",
    "request_extension": "extension-requests",
    "decide_extension": "extension-decisions",
    "add_note": "notes",
    "assist_feedback": "notes",
    "resolve": "resolve",
    "record_callback": "callback",
    "supervise": "supervise",
    "assign": "reassign",
    "reassign": "reassign",
}


class IntakeUnavailable(Exception):
    """Intake could not be reached, or refused the workbench itself (its key); the message is for people."""


@dataclass(frozen=True)
class IntakeAnswer:
    status_code: int
    body: dict[str, Any]


def actor_headers(account: Account) -> dict[str, str]:
    role, unit = machine_role(account)
    return {"X-Actor-Account": account.username, "X-Actor-Name": quote(account.name, safe=""),
            "X-Actor-Role": role, "X-Actor-Unit": unit}


class IntakeClient:
    def __init__(self, base_url: str, key: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.configured = bool(key)
        self._client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=TIMEOUT_S, transport=transport,
                                         headers={"X-API-Key": key})

    async def command(self, ticket_id: str, action: str, body: dict[str, Any], account: Account,
                      command_id: str) -> IntakeAnswer:
        path = f"/v1/tickets/{quote(ticket_id, safe='')}/{COMMAND_PATHS[action]}"
        try:
            response = await self._client.post(path, json=body,
                                               headers={**actor_headers(account), "Command-Id": command_id})
        except httpx.HTTPError as error:
            raise IntakeUnavailable("受理服务暂时无法连接，请稍后重试") from error
        if response.status_code in (401, 403):
            raise IntakeUnavailable("工作台密钥无效或角色不符，请联系管理员")
        if response.status_code >= 500:
            raise IntakeUnavailable("受理服务暂时不可用，请稍后重试")
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        return IntakeAnswer(response.status_code, answer if isinstance(answer, dict) else {})

    async def close(self) -> None:
        await self._client.aclose()
