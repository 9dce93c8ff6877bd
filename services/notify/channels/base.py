"""What every channel adapter shares: the interface, the error that says whether to try again, and the HTTP call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from ..messages import Message


class DeliveryError(Exception):
    """A failed attempt. ``kind`` is one of a small fixed set (metrics label): timeout, connect_error, http_error,
    rejected (the receiver said no), rate_limited (the receiver said: too many); ``retryable`` says whether the
    same request may succeed later."""

    def __init__(self, kind: str, detail: str, retryable: bool) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retryable = retryable


@dataclass(frozen=True)
class SendContext:
    """What a message is about, for receivers that want ids beside the text (and idempotency keys)."""

    key: str
    ticket_id: str
    transition: str
    recipient: str
    role: str


class ChannelAdapter(Protocol):
    """One channel (a robot, a mailbox, phones); raises :class:`DeliveryError` when the message did not arrive."""

    async def send(self, message: Message, context: SendContext) -> None: ...


async def post_json(
    client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str] | None = None, **options: Any
) -> httpx.Response:
    """POST a JSON body; transport failures and HTTP errors become :class:`DeliveryError`."""
    try:
        response = await client.post(url, json=body, headers=headers, **options)
    except httpx.TimeoutException as error:
        raise DeliveryError("timeout", f"timeout: {error}", retryable=True) from error
    except httpx.TransportError as error:
        raise DeliveryError("connect_error", f"{type(error).__name__}: {error}", retryable=True) from error
    if response.status_code >= 400:
        # 4xx other than 408/429 will not get better by repeating the same request.
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        kind = "rate_limited" if response.status_code == 429 else "http_error"
        raise DeliveryError(kind, f"HTTP {response.status_code}: {response.text[:200]}", retryable)
    return response


def answer_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON object a robot answers with (robots answer HTTP 200 and put the verdict in the body)."""
    try:
        answer = response.json()
    except ValueError as error:
        raise DeliveryError("rejected", f"answer is not JSON: {response.text[:200]}", retryable=True) from error
    if not isinstance(answer, dict):
        raise DeliveryError("rejected", f"answer is not a JSON object: {response.text[:200]}", retryable=True)
    return answer
