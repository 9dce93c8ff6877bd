"""SMS (短信) through an HTTP gateway: one POST per phone, the body rendered from the configured template."""

from __future__ import annotations

import httpx
import jinja2
import orjson

from civicbus.district import SmsChannel, SmsGateway

from ..messages import Message
from .base import DeliveryError, SendContext, answer_of, post_json


def sms_text(message: Message, limit: int) -> str:
    """The title and as much of the text as fits: an SMS is read on a phone's lock screen."""
    text = f"{message.title}\n{message.text}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SmsAdapter:
    def __init__(self, channel: SmsChannel, gateway: SmsGateway, client: httpx.AsyncClient) -> None:
        self._channel = channel
        self._gateway = gateway
        self._client = client
        self._sent: set[tuple[str, str]] = set()  # (notification key, phone) sent while its retries go on
        self._template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(gateway.body_template)

    def body(self, phone: str, text: str, key: str) -> object:
        rendered = self._template.render(phone=phone, text=text, key=key)
        try:
            return orjson.loads(rendered)
        except orjson.JSONDecodeError as error:
            raise DeliveryError("rejected", f"SMS body_template did not give JSON: {error}", retryable=False) from error

    async def send(self, message: Message, context: SendContext) -> None:
        gateway = self._gateway
        text = sms_text(message, gateway.max_length)
        auth = (gateway.username, gateway.password) if gateway.username else None
        for phone in self._channel.phones:
            if (context.key, phone) in self._sent:
                continue  # a retry after a later phone failed: this one has its SMS already
            body = self.body(phone, text, f"{context.key}:{phone}")
            response = await post_json(self._client, gateway.url, body, headers=gateway.headers, auth=auth)
            if gateway.success_field:
                answer = answer_of(response)
                if str(answer.get(gateway.success_field)) != gateway.success_value:
                    raise DeliveryError("rejected", f"SMS gateway: {str(answer)[:200]}", retryable=True)
            self._sent.add((context.key, phone))
        self._sent.difference_update((context.key, phone) for phone in self._channel.phones)
