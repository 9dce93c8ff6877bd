"""The generic JSON webhook (通用 Webhook): one POST per message, with an idempotency key the receiver may use."""

from __future__ import annotations

from typing import Any

import httpx

from civicbus.district import WebhookChannel

from ..messages import Message


class DeliveryError(Exception):
    """A failed attempt; ``kind`` is a small fixed set for metrics, ``retryable`` says whether to try again."""

    def __init__(self, kind: str, detail: str, retryable: bool) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retryable = retryable


async def send_webhook(
    client: httpx.AsyncClient, channel: WebhookChannel, message: Message, key: str, context: dict[str, Any]
) -> None:
    body = {"msgtype": "text", "title": message.title, "text": message.text, "notification_id": key, **context}
    try:
        response = await client.post(channel.url, json=body, headers={"Idempotency-Key": key})
    except httpx.TimeoutException as error:
        raise DeliveryError("timeout", f"timeout: {error}", retryable=True) from error
    except httpx.TransportError as error:
        raise DeliveryError("connect_error", f"{type(error).__name__}: {error}", retryable=True) from error
    if response.status_code >= 400:
        # 4xx other than 408/429 will not get better by repeating the same request.
        retryable = response.status_code >= 500 or response.status_code in (408, 429)
        raise DeliveryError("http_error", f"HTTP {response.status_code}: {response.text[:200]}", retryable)
