"""The generic JSON webhook (通用 Webhook): one POST per message, with an idempotency key the receiver may use."""

from __future__ import annotations

from typing import Literal

import httpx
from pydantic import Field

from civicbus.district import HttpUrl, Strict

from ..messages import Message
from .base import SendContext, post_json


class WebhookChannel(Strict):
    """A generic JSON webhook (通用 Webhook): the message and the ticket's ids as one JSON object."""

    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    rate_per_minute: int | None = Field(default=None, gt=0, description="messages a minute before a digest")


class WebhookAdapter:
    def __init__(self, channel: WebhookChannel, client: httpx.AsyncClient) -> None:
        self._channel = channel
        self._client = client

    async def send(self, message: Message, context: SendContext) -> None:
        body = {
            "msgtype": "text",
            "title": message.title,
            "text": message.text,
            "url": message.url,  # the workbench page: a ticket's, or the workbench for a digest
            "notification_id": context.key,
            "ticket_id": context.ticket_id,
            "transition": context.transition,
            "recipient": context.recipient,
            "role": context.role,
        }
        await post_json(self._client, self._channel.url, body, headers={"Idempotency-Key": context.key})
