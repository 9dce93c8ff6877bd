"""Delivery channels, one adapter module each, behind one interface (:class:`base.ChannelAdapter`)."""

from __future__ import annotations

import hashlib

import httpx

from civicbus.district import Channel, NotifyFile

from .base import ChannelAdapter, DeliveryError, SendContext
from .email import EmailAdapter
from .robots import DingTalkAdapter, FeishuAdapter, WeComAdapter
from .sms import SmsAdapter
from .webhook import WebhookAdapter

__all__ = ["ChannelAdapter", "DeliveryError", "SendContext", "adapter_for", "channel_id"]


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
            assert notify.smtp is not None  # load_district refuses e-mail channels without a server
            return EmailAdapter(channel, notify.smtp)
        case "sms":
            assert notify.sms_gateway is not None
            return SmsAdapter(channel, notify.sms_gateway, client)
    raise ValueError(f"unknown channel type {channel.type!r}")
