"""Group robots (群机器人) in their vendors' own formats: DingTalk, WeCom and Feishu, each with a way to open the
message's workbench page — a card's button on DingTalk and Feishu, a Markdown link on WeCom.

Each answers HTTP 200 with a verdict in the body (``errcode`` / ``code``); anything but 0 is a failure. Each limits
how many messages a robot may post (DingTalk: 20 a minute, then a 10-minute ban); their "too many" codes are
``rate_limited``, which the pipeline turns into a digest rather than a retry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable
from typing import Literal

import httpx
from pydantic import Field

from civicbus.district import HttpUrl, Strict

from ..messages import Message
from .base import DeliveryError, SendContext, answer_of, post_json


class DingTalkChannel(Strict):
    """A DingTalk custom group robot (钉钉自定义机器人); ``secret`` is its 加签 key (SEC…), if signing is on."""

    type: Literal["dingtalk"]
    url: HttpUrl = Field(description="https://oapi.dingtalk.com/robot/send?access_token=…")
    secret: str = ""
    rate_per_minute: int | None = Field(default=20, gt=0, description="DingTalk bans a robot for 10 min past 20/min")


class WeComChannel(Strict):
    """A WeCom group robot (企业微信群机器人)."""

    type: Literal["wecom"]
    url: HttpUrl = Field(description="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…")
    rate_per_minute: int | None = Field(default=20, gt=0)


class FeishuChannel(Strict):
    """A Feishu custom bot (飞书自定义机器人); ``secret`` is its 签名校验 key, if signing is on."""

    type: Literal["feishu"]
    url: HttpUrl = Field(description="https://open.feishu.cn/open-apis/bot/v2/hook/…")
    secret: str = ""
    rate_per_minute: int | None = Field(default=100, gt=0)


DINGTALK_RATE_LIMITED = {130101}  # send too fast, exceed 20 times per minute
WECOM_RATE_LIMITED = {45009, 45033}  # api freq out of limit
FEISHU_RATE_LIMITED = {11232, 9499}  # frequency limited
# Codes that will not change by sending the same request again (bad token, bad signature, keyword missing, …).
DINGTALK_FINAL = {300001, 310000, 300005, 400102, 40035}
FEISHU_FINAL = {19001, 19021, 19022, 19024}
WECOM_FINAL = {93000, 40008, 40058, 45002}

Clock = Callable[[], float]


# What DingTalk's and WeCom's Markdown read as markup (links, images, emphasis, code, HTML such as <font>,
# headings, tables), turned into the full-width forms Chinese text uses anyway: what a citizen wrote shows as
# written and cannot become a link or an image in a unit's chat (Feishu's card takes plain_text instead).
MARKUP_AS_TEXT = str.maketrans({"[": "［", "]": "］", "(": "（", ")": "）", "!": "！", "*": "＊", "_": "＿",
                                "`": "｀", "<": "＜", ">": "＞", "#": "＃", "|": "｜", "~": "～", "\\": "＼"})


def as_markdown_text(text: str) -> str:
    """``text`` shown as written in a Markdown message: no character of it is markup."""
    return text.translate(MARKUP_AS_TEXT)


def markdown_lines(message: Message) -> str:
    """Markdown with a heading and one line per line of text (two spaces end a Markdown line)."""
    return f"#### {as_markdown_text(message.title)}\n\n" + "  \n".join(
        as_markdown_text(line) for line in message.text.splitlines())


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk 加签: base64(HmacSHA256(key=secret, msg="<timestamp>\\n<secret>")), URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode())


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu 签名校验: base64(HmacSHA256(key="<timestamp>\\n<secret>", msg="")) — the key is the string to sign."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _verdict(answer: dict, field: str, rate_limited: set[int], final: set[int], vendor: str) -> None:
    code = answer.get(field, answer.get("StatusCode", 0))
    if code in (0, None):
        return
    detail = f"{vendor} {field}={code}: {answer.get('errmsg') or answer.get('msg') or answer.get('StatusMessage', '')}"
    if code in rate_limited:
        raise DeliveryError("rate_limited", detail, retryable=True)
    raise DeliveryError("rejected", detail, retryable=code not in final)


class DingTalkAdapter:
    def __init__(self, channel: DingTalkChannel, client: httpx.AsyncClient, clock: Clock = time.time) -> None:
        self._channel = channel
        self._client = client
        self._clock = clock

    def request(self, message: Message) -> tuple[str, dict]:
        # The 整体跳转 actionCard of DingTalk's custom robot: {"msgtype": "actionCard", "actionCard": {"title",
        # "text" (Markdown), "singleTitle", "singleURL"}}; the one button (查看 or 签收) opens the workbench page.
        # https://open.dingtalk.com/document/development/robot-message-type
        body = {"msgtype": "actionCard", "actionCard": {
            "title": message.title, "text": markdown_lines(message),
            "singleTitle": message.button, "singleURL": message.url,
        }}
        url = self._channel.url
        if self._channel.secret:
            url = dingtalk_signed_url(url, self._channel.secret, int(self._clock() * 1000))
        return url, body

    async def send(self, message: Message, context: SendContext) -> None:
        url, body = self.request(message)
        answer = answer_of(await post_json(self._client, url, body))
        _verdict(answer, "errcode", DINGTALK_RATE_LIMITED, DINGTALK_FINAL, "DingTalk")


class WeComAdapter:
    def __init__(self, channel: WeComChannel, client: httpx.AsyncClient) -> None:
        self._channel = channel
        self._client = client

    @staticmethod
    def body(message: Message) -> dict:
        # WeCom's markdown knows no heading levels below ####: the title in bold reads best in the chat. Its
        # markdown message has no button; a [text](url) link, which it supports, opens the workbench page.
        text = f"**{as_markdown_text(message.title)}**\n" + "\n".join(
            as_markdown_text(line) for line in message.text.splitlines())
        link = f"[点击{message.button}]({message.url})"
        return {"msgtype": "markdown", "markdown": {"content": f"{text}\n{link}"}}

    async def send(self, message: Message, context: SendContext) -> None:
        answer = answer_of(await post_json(self._client, self._channel.url, self.body(message)))
        _verdict(answer, "errcode", WECOM_RATE_LIMITED, WECOM_FINAL, "WeCom")


class FeishuAdapter:
    def __init__(self, channel: FeishuChannel, client: httpx.AsyncClient, clock: Clock = time.time) -> None:
        self._channel = channel
        self._client = client
        self._clock = clock

    def body(self, message: Message) -> dict:
        """A message card: the title as its header, the text, and a button (查看 or 签收) that opens the workbench
        page. The custom bot's card format is {"msg_type": "interactive", "card": {"header": {"title":
        <plain_text>}, "elements": [{"tag": "div", "text": …}, {"tag": "action", "actions": [{"tag": "button",
        "text": <plain_text>, "type": "primary", "url": …}]}]}} — Feishu's "Send message cards with custom bot" and
        its button component (a custom bot's card may only open links, which is all this one does):
        https://open.feishu.cn/document/common-capabilities/message-card/getting-started/send-message-cards-with-a-custom-bot
        The text is plain_text, not lark_md: nothing a citizen wrote is read as markup."""
        body: dict = {
            "msg_type": "interactive",
            "card": {
                "header": {"title": {"tag": "plain_text", "content": message.title}, "template": "blue"},
                "elements": [
                    {"tag": "div", "text": {"tag": "plain_text", "content": message.text}},
                    {"tag": "action", "actions": [{
                        "tag": "button", "text": {"tag": "plain_text", "content": message.button},
                        "type": "primary", "url": message.url,
                    }]},
                ],
            },
        }
        if self._channel.secret:
            timestamp = int(self._clock())
            body = {"timestamp": str(timestamp), "sign": feishu_sign(self._channel.secret, timestamp), **body}
        return body

    async def send(self, message: Message, context: SendContext) -> None:
        answer = answer_of(await post_json(self._client, self._channel.url, self.body(message)))
        _verdict(answer, "code", FEISHU_RATE_LIMITED, FEISHU_FINAL, "Feishu")
