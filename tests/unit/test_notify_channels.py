"""Robot formats and signatures, checked against the vendors' documented algorithms computed independently here;
every channel's way to the message's workbench page (a card's button, a link)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse

import pytest

from services.notify.channels.base import DeliveryError
from services.notify.channels.robots import (
    DingTalkAdapter,
    DingTalkChannel,
    FeishuAdapter,
    FeishuChannel,
    WeComAdapter,
    _verdict,
    dingtalk_sign,
)
from services.notify.channels.sms import sms_text
from services.notify.messages import Message

PAGE = "https://gd.shifan.example.gov.cn/workbench/tickets/SF20261125000001"
MESSAGE = Message(title="【新工单】工资拖欠", text="第一行\n第二行", url=PAGE, button="签收")
SECRET = "SEC0123456789abcdef"


def test_dingtalk_signed_url_carries_timestamp_and_the_documented_hmac():
    adapter = DingTalkAdapter(DingTalkChannel(type="dingtalk", url="https://oapi.dingtalk.com/robot/send?access_token=t",
                                              secret=SECRET), client=None, clock=lambda: 1700000000.123)
    url, body = adapter.request(MESSAGE)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query["access_token"] == ["t"] and query["timestamp"] == ["1700000000123"]
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"1700000000123\n{SECRET}".encode(), hashlib.sha256).digest()).decode()
    assert query["sign"] == [expected]  # parse_qs undoes the URL-encoding
    # The 整体跳转 actionCard: Markdown text and one button that opens the ticket's page, where it is signed for.
    assert body == {"msgtype": "actionCard", "actionCard": {
        "title": "【新工单】工资拖欠", "text": "#### 【新工单】工资拖欠\n\n第一行  \n第二行",
        "singleTitle": "签收", "singleURL": PAGE,
    }}


def test_dingtalk_without_secret_posts_to_the_plain_url():
    adapter = DingTalkAdapter(DingTalkChannel(type="dingtalk", url="https://oapi.dingtalk.com/robot/send?access_token=t"),
                              client=None)
    assert adapter.request(MESSAGE)[0] == "https://oapi.dingtalk.com/robot/send?access_token=t"


def test_feishu_signs_with_timestamp_and_secret_as_the_key_over_an_empty_message():
    adapter = FeishuAdapter(FeishuChannel(type="feishu", url="https://open.feishu.cn/open-apis/bot/v2/hook/x",
                                          secret=SECRET), client=None, clock=lambda: 1599360473.9)
    body = adapter.body(MESSAGE)
    expected = base64.b64encode(hmac.new(f"1599360473\n{SECRET}".encode(), b"", hashlib.sha256).digest()).decode()
    assert body["timestamp"] == "1599360473" and body["sign"] == expected
    assert body["msg_type"] == "interactive"
    assert body["card"] == {
        "header": {"title": {"tag": "plain_text", "content": "【新工单】工资拖欠"}, "template": "blue"},
        "elements": [
            {"tag": "div", "text": {"tag": "plain_text", "content": "第一行\n第二行"}},
            {"tag": "action", "actions": [{"tag": "button", "text": {"tag": "plain_text", "content": "签收"},
                                           "type": "primary", "url": PAGE}]},
        ],
    }


def test_a_feishu_card_shows_what_a_citizen_wrote_as_plain_text_not_markup():
    message = Message(title="【新工单】投诉", text="内容：[点我](https://evil.example) **急**", url=PAGE)
    adapter = FeishuAdapter(FeishuChannel(type="feishu", url="https://open.feishu.cn/open-apis/bot/v2/hook/x"),
                            client=None)
    div, action = adapter.body(message)["card"]["elements"]
    assert div["text"] == {"tag": "plain_text", "content": "内容：[点我](https://evil.example) **急**"}
    assert action["actions"][0]["text"]["content"] == "查看" and action["actions"][0]["url"] == PAGE


def test_what_a_citizen_wrote_is_no_markup_in_dingtalk_or_wecom_markdown():
    message = Message(title="【新工单】<font color=red>投诉</font>",
                      text="内容：[点我](https://evil.example) ![图](https://evil.example/x.png) **急** `码` # 标题",
                      url=PAGE)
    dingtalk = DingTalkAdapter(DingTalkChannel(type="dingtalk", url="https://oapi.dingtalk.com/robot/send?access_token=x"),
                               client=None)
    _, body = dingtalk.request(message)
    wecom = WeComAdapter.body(message)["markdown"]["content"]
    for shown in (body["actionCard"]["text"], wecom):
        assert "<font" not in shown  # the title: our own heading or bold only
        citizen = "\n".join(line for line in shown.splitlines()[1:] if line != f"[点击查看]({PAGE})")
        for markup in ("[", "](", "![", "**", "`", "# "):
            assert markup not in citizen, (markup, shown)
        assert "［点我］（https://evil.example）" in citizen
    assert body["actionCard"]["singleURL"] == PAGE


def test_wecom_markdown_body():
    assert WeComAdapter.body(MESSAGE) == {"msgtype": "markdown", "markdown": {
        "content": f"**【新工单】工资拖欠**\n第一行\n第二行\n[点击签收]({PAGE})"}}


@pytest.mark.parametrize(
    ("answer", "field", "kind", "retryable"),
    [
        ({"errcode": 130101, "errmsg": "send too fast"}, "errcode", "rate_limited", True),
        ({"errcode": 310000, "errmsg": "sign not match"}, "errcode", "rejected", False),
        ({"errcode": -1, "errmsg": "system busy"}, "errcode", "rejected", True),
        ({"code": 11232, "msg": "frequency limited"}, "code", "rate_limited", True),
        ({"code": 19021, "msg": "sign match fail"}, "code", "rejected", False),
    ],
)
def test_robot_error_codes_in_a_200_answer_are_failures(answer, field, kind, retryable):
    with pytest.raises(DeliveryError) as raised:
        _verdict(answer, field, {130101, 11232}, {310000, 19021}, "robot")
    assert raised.value.kind == kind and raised.value.retryable is retryable


def test_a_zero_code_is_success():
    _verdict({"errcode": 0, "errmsg": "ok"}, "errcode", set(), set(), "DingTalk")
    _verdict({"code": 0, "msg": "success"}, "code", set(), set(), "Feishu")
    _verdict({"StatusCode": 0, "StatusMessage": "success"}, "code", set(), set(), "Feishu")


def test_sms_text_is_cut_to_the_gateway_limit_keeping_the_link_whole():
    short = "https://gd.example.cn/workbench/tickets/SF1"
    text = sms_text(Message(title="标题", text="很长" * 100, url=short), 80)
    assert len(text) == 80 and text.startswith("标题\n很长") and text.endswith(f"…\n查看：{short}")


def test_a_short_sms_carries_its_text_and_link_uncut():
    assert sms_text(Message(title="标题", text="正文", url=PAGE, button="签收"), 300) == f"标题\n正文\n签收：{PAGE}"


def test_an_sms_limit_too_short_for_the_link_cuts_the_text_as_before():
    text = sms_text(Message(title="标题", text="很长" * 100, url=PAGE), 50)
    assert len(text) == 50 and text.endswith("…") and text.startswith("标题\n") and "https" not in text


def test_an_email_ends_with_the_link_to_the_workbench_page():
    from services.notify.channels.base import SendContext
    from services.notify.channels.email import EmailChannel, SmtpServer, email_for

    mail = email_for(SmtpServer(host="smtp.local", sender="notify@shifan.example.gov.cn"),
                     EmailChannel(type="email", to=["laobao@shifan.example.gov.cn"]), MESSAGE,
                     SendContext("k1", "SF20261125000001", "ticket.routed", "laobao", "lead"))
    assert mail.get_content() == f"第一行\n第二行\n\n在工作台签收：{PAGE}\n"


async def test_the_webhooks_json_carries_the_page_url():
    import httpx
    import orjson

    from services.notify.channels.base import SendContext
    from services.notify.channels.webhook import WebhookAdapter, WebhookChannel

    bodies: list[dict] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        bodies.append(orjson.loads(request.content))
        return httpx.Response(200)

    adapter = WebhookAdapter(WebhookChannel(url="http://hook.local/in"),
                             httpx.AsyncClient(transport=httpx.MockTransport(receiver)))
    await adapter.send(MESSAGE, SendContext("k1", "SF20261125000001", "ticket.routed", "laobao", "lead"))
    [body] = bodies
    assert body["url"] == PAGE and body["ticket_id"] == "SF20261125000001" and body["title"] == MESSAGE.title


def test_dingtalk_sign_is_url_encoded():
    raw = base64.b64encode(hmac.new(SECRET.encode(), f"7\n{SECRET}".encode(), hashlib.sha256).digest()).decode()
    assert dingtalk_sign(SECRET, 7) == urllib.parse.quote_plus(raw)


async def test_an_sms_retry_does_not_text_a_phone_that_already_has_it():
    import httpx

    from services.notify.channels.base import SendContext
    from services.notify.channels.sms import SmsAdapter, SmsChannel, SmsGateway

    calls: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        phone = httpx.Response(200, content=request.content).json()["mobile"]
        calls.append(phone)
        failing = phone == "13900000002" and calls.count(phone) == 1
        return httpx.Response(503 if failing else 200, json={"code": "0"})

    adapter = SmsAdapter(
        SmsChannel(type="sms", phones=["13900000001", "13900000002"]),
        SmsGateway(url="http://sms.local/send", body_template='{"mobile": {{ phone | tojson }}}',
                   success_field="code", success_value="0"),
        httpx.AsyncClient(transport=httpx.MockTransport(gateway)),
    )
    context = SendContext("k1", "T1", "ticket.routed", "laobao", "lead")
    with pytest.raises(DeliveryError):
        await adapter.send(MESSAGE, context)
    await adapter.send(MESSAGE, context)
    assert calls == ["13900000001", "13900000002", "13900000002"]
