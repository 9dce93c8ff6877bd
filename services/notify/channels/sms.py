"""SMS (短信) through an HTTP gateway: one POST per phone, the body rendered from the configured template."""

from __future__ import annotations

from typing import Annotated, Literal

import httpx
import jinja2
import orjson
from pydantic import Field, field_validator

from civicbus.district import HttpUrl, Strict

from ..messages import Message
from .base import DeliveryError, SendContext, answer_of, post_json


class SmsChannel(Strict):
    """SMS (短信) through the HTTP gateway of ``notify.yaml``."""

    type: Literal["sms"]
    phones: list[Annotated[str, Field(pattern=r"^1[3-9]\d{9}$")]] = Field(min_length=1)
    rate_per_minute: int | None = Field(default=None, gt=0)


class SmsGateway(Strict):
    """An HTTP SMS gateway (短信网关), ``sms_gateway`` in notify.yaml: one POST per phone, its JSON body rendered from
    ``body_template`` (Jinja2, given ``phone`` and ``text``; use ``| tojson``)."""

    url: HttpUrl
    headers: dict[str, str] = Field(default={}, description="e.g. an Authorization header from ${SMS_TOKEN}")
    username: str = Field(default="", description="HTTP basic auth, if the gateway wants it")
    password: str = ""
    body_template: str = Field(min_length=2)
    success_field: str = Field(default="", description="a field of the JSON answer that says whether it was sent")
    success_value: str = Field(default="", description="the value of success_field that means sent")
    max_length: int = Field(default=300, gt=10, description="longer texts are cut (an SMS is short)")

    @field_validator("body_template")
    @classmethod
    def _valid_template(cls, template: str) -> str:
        try:
            jinja2.Environment().parse(template)
        except jinja2.TemplateSyntaxError as error:
            raise ValueError(f"body_template is not a valid Jinja2 template: {error}") from error
        return template


def sms_text(message: Message, limit: int) -> str:
    """The title, as much of the text as fits and the link to the workbench page last, whole (a cut link opens
    nothing): an SMS is read on a phone's lock screen. A limit too short for the title and the link
    leaves the link out."""
    text = f"{message.title}\n{message.text}"
    link = f"\n{message.button}：{message.url}"
    if len(text) + len(link) <= limit:
        return text + link
    room = limit - len(link) - 1  # the rest of the text stands for "…"
    if room < len(message.title):
        return text[: limit - 1] + "…"
    return text[:room] + "…" + link


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
