"""Delivery channels, one module each holding the channel's settings (what district.yaml and notify.yaml say of
it) and its adapter, behind one interface (:class:`base.ChannelAdapter`). A new channel is a module here, a member
of :data:`Channel` and a case of :func:`adapter_for`; the kernel only carries its ``type``."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated

import httpx
from pydantic import Field

from .base import ChannelAdapter, DeliveryError, SendContext
from .email import EmailAdapter, EmailChannel
from .robots import DingTalkAdapter, DingTalkChannel, FeishuAdapter, FeishuChannel, WeComAdapter, WeComChannel
from .sms import SmsAdapter, SmsChannel
from .webhook import WebhookAdapter, WebhookChannel

if TYPE_CHECKING:
    from ..config import NotifyFile

__all__ = ["Channel", "ChannelAdapter", "DeliveryError", "SendContext", "adapter_for", "channel_id"]

Channel = Annotated[
    WebhookChannel | DingTalkChannel | WeComChannel | FeishuChannel | EmailChannel | SmsChannel,
    Field(discriminator="type"),
]


def channel_id(channel: Channel) -> str:
    """A stable name for one configured channel (its rate limit and its digests are its own)."""
    return f"{channel.type}-{hashlib.sha1(channel.model_dump_json().encode()).hexdigest()[:12]}"


def adapter_for(channel: Channel, notify: NotifyFile, client: httpx.AsyncClient) -> ChannelAdapter:
    match channel.type:
        case "webhook":
            return WebhookAdapter(channel, client)
        case "dingtalk":
            return DingTalkAdapter(channel, client)
        case "wecom":
            return WeComAdapter(channel, client)
        case "feishu":
            return FeishuAdapter(channel, client)
        case "email":
            assert notify.smtp is not None  # load_notify_config refuses e-mail channels without a server
            return EmailAdapter(channel, notify.smtp)
        case "sms":
            assert notify.sms_gateway is not None
            return SmsAdapter(channel, notify.sms_gateway, client)
    raise ValueError(f"unknown channel type {channel.type!r}")
