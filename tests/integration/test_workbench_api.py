"""The workbench's API against the running services: sign-in and its cookie, CSRF, login throttling, a unit that
may not see another unit's ticket, an action that goes through intake to triage and names the person on the
timeline, attachments checked by type and size, and logout.

Accounts are made in the session's database with a suffix of this run, so another module's accounts never clash.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from services.reporting.workbench.accounts import AccountStore, checked_account
from services.reporting.workbench.cli import workbench_app

from .conftest import eventually

pytestmark = pytest.mark.integration
RUN = uuid.uuid4().hex[:6]
PASSWORD = "正确的密码-2026"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"


@pytest.fixture(scope="module")
async def accounts(mongo, district) -> dict[str, str]:
    """username by who they are: 劳动保障所's and 西溪村's 承办人, and one whose password is guessed."""
    store = AccountStore(mongo)
    made = {}
    for who, name, unit in [("laobao", "张劳保", "laobao"), ("xixi", "王西溪", "xixi"), ("guessed", "李猜", "laobao")]:
        account = checked_account(district, f"{who}.{RUN}", name, "staff", unit=unit)
        await store.create(account, PASSWORD)
        made[who] = account.username
    return made


@dataclass
class Signed:
    """A signed-in browser: its session cookie and CSRF token."""

    client: httpx.AsyncClient
    token: str
    csrf: str

    async def post(self, path: str, csrf: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf if csrf is None else csrf, **kwargs.pop("headers", {})}
        return await self.client.post(path, headers=headers, **kwargs)


async def login(base_url: str, username: str, password: str = PASSWORD) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=15) as client:
        return await client.post("/workbench/api/login", json={"username": username, "password": password})


@pytest.fixture
async def sign_in(services) -> AsyncIterator:
    base_url = services["reporting"].base_url
    opened: list[httpx.AsyncClient] = []

    async def signed(username: str) -> Signed:
        response = await login(base_url, username)
        assert response.status_code == 200, response.text
        token = response.cookies["civicbus_session"]
        client = httpx.AsyncClient(base_url=base_url, timeout=30, headers={"Cookie": f"civicbus_session={token}"})
        opened.append(client)
        return Signed(client, token, response.json()["csrf_token"])

    yield signed
    for client in opened:
        await client.aclose()


async def new_ticket(http, services, mongo, content: str) -> dict:
    response = await http.post(f"{services['intake'].base_url}/v1/complaints", json={"content": content})
    event_id = response.json()["event_id"]
    view = await eventually(lambda: mongo["ticket_views"].find_one({"source_event_id": event_id, "state": "routed"}),
                            what="the ticket's view")
    assert view["lead_unit"] == "laobao", view["lead_unit"]
    return view


@pytest.fixture(scope="module")
async def wages_ticket(http, services, mongo) -> dict:
    """A ticket of 劳动保障所 left as routed (the tests that must change nothing use it)."""
    return await new_ticket(http, services, mongo, f"老板拖欠工资三个月不发（工作台测试 {RUN}）")


async def test_sign_in_sets_an_http_only_same_site_cookie_and_me_answers(services, accounts, sign_in):
    response = await login(services["reporting"].base_url, accounts["laobao"])
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("civicbus_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie, "secure_cookies is off on plain HTTP"
    body = response.json()
    assert body["person"]["role_name"] == "承办人" and body["person"]["unit_name"] == "劳动保障所"
    person = await sign_in(accounts["laobao"])
    me = (await person.client.get("/workbench/api/me")).json()
    assert me["username"] == accounts["laobao"] and me["name"] == "张劳保" and me["csrf_token"] == person.csrf
    units = (await person.client.get("/workbench/api/units")).json()
    assert {"id": "laobao", "name": "劳动保障所", "kind": "station"} in units, "for 派单 and 改派"
    async with httpx.AsyncClient(base_url=services["reporting"].base_url) as stranger:
        assert (await stranger.get("/workbench/api/me")).status_code == 401
    base_url = services["reporting"].base_url
    wrong, unknown, nobodys = await asyncio.gather(login(base_url, accounts["laobao"], "不是这个密码"),
                                                   login(base_url, f"nobody.{RUN}"), login(base_url, "不是用户名"))
    assert wrong.status_code == unknown.status_code == nobodys.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "用户名或密码错误", "neither is confirmed"
    async with httpx.AsyncClient(base_url=base_url) as client:  # a lone surrogate: JSON can say it, no one types it
        odd = await client.post("/workbench/api/login", headers={"Content-Type": "application/json"},
                                content=f'{{"username": "{accounts["laobao"]}", "password": "\\ud800密码"}}')
    assert odd.status_code == 422 and odd.json()["detail"].startswith("请求内容有误"), "refused, not a 500"


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(accounts, sign_in, wages_ticket, mongo):
    person = await sign_in(accounts["laobao"])
    path = f"/workbench/api/tickets/{wages_ticket['ticket_id']}/actions/sign_for"
    for token in ("", "not-the-token"):
        refused = await person.post(path, csrf=token, json={"note": "收到"})
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert (await person.post("/workbench/api/logout", csrf="")).status_code == 403
    assert (await person.client.get("/workbench/api/me")).status_code == 200, "the session is still there"
    view = await mongo["ticket_views"].find_one({"_id": wages_ticket["ticket_id"]})
    assert view["state"] == "routed" and len(view["timeline"]) == len(wages_ticket["timeline"])


async def test_the_sixth_wrong_password_in_a_row_is_throttled_even_when_right(services, accounts):
    base_url = services["reporting"].base_url
    guesses = await asyncio.gather(*(login(base_url, accounts["guessed"], f"猜一个密码{n}") for n in range(5)))
    assert [guess.status_code for guess in guesses] == [401] * 5
    throttled = await login(base_url, accounts["guessed"])
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["Retry-After"]) <= 15 * 60
    assert throttled.json()["detail"].startswith("登录失败次数过多，请 ")
    other = await login(base_url, accounts["laobao"])
    assert other.status_code == 200, "counted per username: another account signs in"


async def test_another_units_ticket_its_file_and_its_actions_are_not_found(accounts, sign_in, wages_ticket):
    owner, stranger = await sign_in(accounts["laobao"]), await sign_in(accounts["xixi"])
    ticket_id = wages_ticket["ticket_id"]
    uploaded = await owner.post(f"/workbench/api/tickets/{ticket_id}/files", files={"file": ("现场.png", PNG)})
    assert uploaded.status_code == 200, uploaded.text
    file_url = f"/workbench/api/files/{uploaded.json()['id']}"
    assert (await owner.client.get(file_url)).content == PNG

    assert (await stranger.client.get(f"/workbench/api/tickets/{ticket_id}")).status_code == 404
    assert (await stranger.client.get(file_url)).status_code == 404
    acted = await stranger.post(f"/workbench/api/tickets/{ticket_id}/actions/sign_for", json={})
    assert acted.status_code == 404 and acted.json()["detail"] == f"工单 {ticket_id} 不存在"
    listed = (await stranger.client.get("/workbench/api/tickets", params={"tab": "pending_sign"})).json()
    assert ticket_id not in {item["ticket_id"] for item in listed["items"]}
    mine = (await owner.client.get("/workbench/api/tickets", params={"tab": "pending_sign", "q": RUN})).json()
    assert [item["ticket_id"] for item in mine["items"]] == [ticket_id] and mine["tabs"]["pending_sign"] >= 1


async def act(person: Signed, ticket_id: str, action: str, body: dict, request_id: str) -> httpx.Response:
    """An action's answer once triage decided: a 202 (intake's wait was not long enough on a busy machine) is asked
    again with the same X-Request-Id, which is the same command, applied once."""
    async def decided() -> httpx.Response | None:
        response = await person.post(f"/workbench/api/tickets/{ticket_id}/actions/{action}", json=body,
                                     headers={"X-Request-Id": request_id})
        return None if response.status_code == 202 else response

    return await eventually(decided, what=f"triage's decision on {action}")


async def test_sign_for_through_the_workbench_reaches_triage_and_names_the_person(
        http, services, mongo, accounts, sign_in):
    ticket_id = (await new_ticket(http, services, mongo, f"公司拖欠工资半年（工作台签收 {RUN}）"))["ticket_id"]
    person = await sign_in(accounts["laobao"])
    detail = (await person.client.get(f"/workbench/api/tickets/{ticket_id}")).json()
    assert [action["action"] for action in detail["actions"]][:2] == ["sign_for", "return"]
    assert detail["explanation_lines"] and detail["lead_unit_name"] == "劳动保障所"
    signed = await act(person, ticket_id, "sign_for", {"note": "已安排专人"}, "click-1")
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "applied" and signed.json()["message"] == "已签收"
    again = await act(person, ticket_id, "sign_for", {"note": "已安排专人"}, "click-1")
    assert again.status_code == 200, "a double click is the same command, answered the same"
    refused = await act(person, ticket_id, "sign_for", {}, "click-2")
    assert refused.status_code == 409 and refused.json()["code"] == "wrong_state"
    assert "办理中" in refused.json()["detail"], "the state machine's reason, in Chinese"

    async def signed_entries() -> list[dict] | None:
        body = (await person.client.get(f"/workbench/api/tickets/{ticket_id}")).json()
        entries = [entry for entry in body["timeline"] if entry["kind"] == "ticket.acknowledged"]
        return entries if body["state"] == "acknowledged" and entries else None

    entries = await eventually(signed_entries, what="the sign-for on the workbench's timeline")
    assert len(entries) == 1 and entries[0]["kind_name"] == "签收"
    assert "张劳保" in entries[0]["actor"] and "劳动保障所" in entries[0]["actor"], entries[0]["actor"]

    photo = (await person.post(f"/workbench/api/tickets/{ticket_id}/files",
                               files={"file": ("欠薪协调.png", PNG, "image/png")})).json()
    resolved = await act(person, ticket_id, "resolve",
                         {"result": "已协调企业支付工资", "files": [photo["id"]], "amount_recovered": 8000}, "resolve-1")
    assert resolved.status_code == 200 and resolved.json()["message"] == "已办结", resolved.text
    detail = (await person.client.get(f"/workbench/api/tickets/{ticket_id}")).json()
    assert [item["id"] for item in detail["attachments"]] == [photo["id"]]
    ticket = await mongo["tickets"].find_one({"_id": ticket_id})
    assert ticket["attachments"] == [photo["url"]] and photo["url"].endswith(f"/workbench/api/files/{photo['id']}")


async def test_an_upload_is_checked_by_its_bytes_and_its_size(services, accounts, sign_in, wages_ticket):
    person = await sign_in(accounts["laobao"])
    path = f"/workbench/api/tickets/{wages_ticket['ticket_id']}/files"
    disguised = await person.post(path, files={"file": ("照片.png", b"<html><script>alert(1)</script>", "image/png")})
    assert disguised.status_code == 415 and "只能上传" in disguised.json()["detail"]
    limit = services["reporting"].app.state.workbench.settings.attachment_max_bytes
    for size in (limit + 1, 2 * limit):  # read and counted; refused by its Content-Length before it is read
        oversized = await person.post(path, files={"file": ("大图.png", PNG + bytes(size - len(PNG)))})
        assert oversized.status_code == 413 and "附件过大" in oversized.json()["detail"]
    image = (await person.post(path, files={"file": ("a/b/现场.png", PNG, "text/html")})).json()
    fetched = await person.client.get(f"/workbench/api/files/{image['id']}")
    assert fetched.headers["content-type"] == "image/png", "the type sniffed, not the one the browser claimed"
    assert fetched.headers["x-content-type-options"] == "nosniff"
    assert fetched.headers["content-disposition"].startswith("attachment;") and image["name"] == "现场.png"


async def test_logout_ends_the_session(accounts, sign_in):
    person = await sign_in(accounts["laobao"])
    out = await person.post("/workbench/api/logout")
    assert out.status_code == 204 and 'civicbus_session=""' in out.headers["set-cookie"]
    assert (await person.client.get("/workbench/api/me")).status_code == 401, "the old cookie signs no one in"


async def test_the_page_and_its_two_files_are_served(services):
    async with httpx.AsyncClient(base_url=services["reporting"].base_url, timeout=15) as browser:
        page = await browser.get("/workbench/tickets/SF20261130ABCD123456")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "/workbench/static/workbench.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        script = await browser.get("/workbench/static/workbench.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        assert (await browser.get("/workbench/static/workbench.css")).status_code == 200
        assert (await browser.get("/workbench/static/dashboard.js")).status_code == 404, "a fixed list of files"


async def test_the_first_admin_from_the_command_line_manages_accounts_and_keys(stack, services, sign_in, mongo):
    env = {"CIVICBUS_MONGO_URL": stack.mongo_url, "CIVICBUS_MONGO_DB": stack.db_name}
    made = await asyncio.to_thread(CliRunner().invoke, workbench_app, [
        "create-admin", "--username", f"admin.{RUN}", "--name", "系统管理员", "--password-stdin"],
        input=f"{PASSWORD}\n", env=env)
    assert made.exit_code == 0, made.output
    admin = await sign_in(f"admin.{RUN}")
    created = await admin.post("/workbench/api/accounts", json={
        "username": f"callback.{RUN}", "name": "回访员甲", "role": "callback", "password": PASSWORD})
    assert created.status_code == 201 and created.json()["unit"] == "pingan", created.text
    again = await admin.post("/workbench/api/accounts", json={
        "username": f"callback.{RUN}", "name": "回访员乙", "role": "callback", "password": PASSWORD})
    assert again.status_code == 409 and "已存在" in again.json()["detail"]
    caller = await sign_in(f"callback.{RUN}")
    assert (await caller.client.get("/workbench/api/accounts")).status_code == 403, "admins only"
    assert list((await caller.client.get("/workbench/api/tickets")).json()["tabs"]) == ["callback"]

    assert (await admin.post(f"/workbench/api/accounts/callback.{RUN}/disable")).status_code == 204
    assert (await caller.client.get("/workbench/api/me")).status_code == 401, "a disabled account's sessions end"
    refused = await login(services["reporting"].base_url, f"callback.{RUN}")
    assert refused.status_code == 403 and refused.json()["detail"] == "账号已停用"

    issued = await admin.post("/workbench/api/keys", json={"name": f"upstream-{RUN}", "role": "system"})
    assert issued.status_code == 201 and issued.json()["key"].startswith("cbk_")
    listed = [key for key in (await admin.client.get("/workbench/api/keys")).json() if key["name"] == f"upstream-{RUN}"]
    assert len(listed) == 1 and not listed[0]["disabled"]
    assert (await admin.post(f"/workbench/api/keys/{listed[0]['id']}/revoke")).status_code == 204
    stored = await mongo["api_keys"].find_one({"_id": {"$regex": f"^{listed[0]['id']}"}})
    assert stored["disabled"] is True


async def test_a_password_change_ends_the_other_sessions(services, mongo, district, sign_in):
    username = f"changer.{RUN}"
    await AccountStore(mongo).create(checked_account(district, username, "赵换", "staff", unit="xixi"), PASSWORD)
    here, elsewhere = await sign_in(username), await sign_in(username)
    short = await here.post("/workbench/api/password", json={"current": PASSWORD, "new": "short"})
    assert short.status_code == 422 and "new" in short.json()["detail"], "at least 8 characters"
    wrong = await here.post("/workbench/api/password", json={"current": "不是原密码", "new": "新的密码-12345"})
    assert wrong.status_code == 403
    changed = await here.post("/workbench/api/password", json={"current": PASSWORD, "new": "新的密码-12345"})
    assert changed.status_code == 204
    assert (await here.client.get("/workbench/api/me")).status_code == 200, "the session that changed it stays"
    assert (await elsewhere.client.get("/workbench/api/me")).status_code == 401
    base_url = services["reporting"].base_url
    assert (await login(base_url, username)).status_code == 401
    assert (await login(base_url, username, "新的密码-12345")).status_code == 200


async def test_the_dispatcher_reassigns_with_assisting_units(http, services, mongo, district, sign_in):
    username = f"dispatcher.{RUN}"
    await AccountStore(mongo).create(checked_account(district, username, "徐派单", "dispatcher"), PASSWORD)
    ticket_id = (await new_ticket(http, services, mongo, f"包工头拖欠工钱（工作台改派 {RUN}）"))["ticket_id"]
    dispatcher = await sign_in(username)
    detail = (await dispatcher.client.get(f"/workbench/api/tickets/{ticket_id}")).json()
    assert "reassign" in [action["action"] for action in detail["actions"]]
    assert (await dispatcher.post(f"/workbench/api/tickets/{ticket_id}/actions/sign_for", json={})).status_code == 403
    moved = await act(dispatcher, ticket_id, "reassign",
                      {"unit": "xixi", "assist_units": ["laobao", "xixi"], "note": "属地处理"}, "move-1")
    assert moved.status_code == 200 and moved.json()["message"] == "已改派", moved.text
    ticket = await mongo["tickets"].find_one({"_id": ticket_id})
    assert (ticket["lead_unit"], ticket["assist_units"]) == ("xixi", ["laobao"])
