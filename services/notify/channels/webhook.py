"""The generic JSON webhook (通用 Webhook): one POST per message, with an idempotency key the receiver may use."""

from __future__ import annotations

import httpx

from civicbus.district import WebhookChannel

from ..messages import Message
from .base import SendContext, post_json


class WebhookAdapter:
    def __init__(self, channel: WebhookChannel, client: httpx.AsyncClient) -> None:
        self._channel = channel
        self._client = client

    async def send(self, message: Message, context: SendContext) -> None:
        body = {
            "msgtype": "text",
            "title": message.title,
            "text": message.text,
            "notification_id": context.key,
            "ticket_id": context.ticket_id,
            "transition": context.transition,
            "recipient": context.recipient,
            "role": context.role,
        }
        await post_json(self._client, self._channel.url, body, headers={"Idempotency-Key": context.key})
