"""Tried as an attacker and as a careless upstream system would (issue 12), against the running services: security
headers on every answer, only submitting roles submit, a refused command on someone else's ticket looks like an
unknown ticket and leaves no trace, key attempts are throttled, odd input gets a 4xx and a short body no hang."""

from __future__ import annotations

import asyncio
import uuid

from xml.etree import ElementTree

import httpx
import pytest
from typer.testing import CliRunner

from civicbus.auth import KeyStore, Role, create_key, hash_key
from ops import cli
from ops.services import build_service

from .conftest import eventually, serve, start_service

pytestmark = pytest.mark.integration


async def test_every_service_sends_the_security_headers(http, services):
    for service in services.values():
        for path in ("/healthz", "/openapi.json", "/v1/nothing-here"):
            response = await http.get(f"{service.base_url}{path}")
            assert response.headers["X-Content-Type-Options"] == "nosniff", (service.name, path)
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    reporting = services["reporting"].base_url
    page = (await http.get(f"{reporting}/dashboard")).headers["Content-Security-Policy"]
    assert "script-src 'self';" in page and "style-src 'self';" in page and "unsafe-inline" not in page
    weekly = await http.get(f"{reporting}/v1/exports/weekly.html")
    policy = weekly.headers["Content-Security-Policy"]
    assert weekly.status_code == 200 and "style-src 'self' 'sha256-" in policy and "unsafe-inline" not in policy
    assert "onclick" not in weekly.text  # an event handler attribute cannot be allowed by hash


@pytest.fixture(scope="module")
async def keys(mongo):
    return {role: {"X-API-Key": await create_key(mongo, f"web-security {role}", role, "jianshe" if role == "unit"
                                                 else "")} for role in Role}


async def test_only_submitting_roles_submit(http, services, keys):
    intake = services["intake"].base_url
    complaint = {"content": "路灯不亮"}
    for role in (Role.auditor, Role.leader, Role.unit, Role.open311):
        for path, body in (("/v1/complaints", complaint), ("/v1/events/batch", [{"type": "complaint", **complaint}]),
                           ("/v1/alarms", {"content": "烟感", "device_id": "D1", "alarm_type": "smoke"}),
                           ("/v1/inspections", {"content": "消防通道堵塞", "inspection_type": "安全生产"})):
            response = await http.post(f"{intake}{path}", json=body, headers=keys[role])
            assert response.status_code == 403, (role, path, response.text)
            assert "无权操作" in response.json()["detail"]
    assert (await http.post(f"{intake}/v1/complaints", json=complaint, headers=keys[Role.system])).status_code == 202
    form = {"service_code": "urban.roads", "address_string": "星河社区", "description": "路灯不亮",
            "attribute[FACILITY]": "streetlight"}
    for role, expected in ((Role.auditor, 403), (Role.leader, 403), (Role.unit, 403), (Role.open311, 201)):
        response = await http.post(f"{intake}/open311/v2/requests.json",
                                   data={**form, "api_key": keys[role]["X-API-Key"]})
        assert response.status_code == expected, (role, response.text)


async def test_a_url_other_than_http_is_refused_at_the_door(http, services):
    intake = services["intake"].base_url
    finding = await http.post(f"{intake}/v1/inspections", json={
        "content": "消防通道堵塞", "inspection_type": "安全生产", "photos": ["javascript:alert(1)"]})
    assert finding.status_code == 422 and "http" in finding.text
    resolve = await http.post(f"{intake}/v1/tickets/SF20261125AB12CD34EF/resolve",
                              json={"result": "已处理", "attachments": ["data:text/html,<script>1</script>"]})
    assert resolve.status_code == 422 and "http" in resolve.text


async def test_a_command_on_a_ticket_of_another_unit_is_answered_as_unknown_and_leaves_no_trace(
        http, services, mongo, keys):
    intake, reporting = services["intake"].base_url, services["reporting"].base_url
    accepted = await http.post(f"{intake}/v1/complaints", json={
        "content": f"星河社区小区门口垃圾堆积多日无人清理 {uuid.uuid4().hex[:6]}"})
    event_id = accepted.json()["event_id"]
    ticket = await eventually(lambda: mongo["tickets"].find_one({"source_event_id": event_id}), what="the ticket")
    outsider = next(unit for unit in ("jianshe", "laobao", "sifa", "scjg")
                    if unit != ticket["lead_unit"] and unit not in ticket.get("assist_units", []))
    stranger = {"X-API-Key": await create_key(mongo, "无关单位", Role.unit, outsider)}
    refused = await http.post(f"{intake}/v1/tickets/{ticket['_id']}/sign-for", json={}, headers=stranger)
    missing = await http.post(f"{intake}/v1/tickets/SF20990101ZZZZZZZZZZ/sign-for", json={}, headers=stranger)
    assert refused.status_code == missing.status_code == 409
    answer, unknown = refused.json(), missing.json()
    assert answer["code"] == unknown["code"] == "ticket_not_found" and answer["state"] == unknown["state"] == ""
    assert answer["message"] == unknown["message"].replace("SF20990101ZZZZZZZZZZ", ticket["_id"])
    # A note applied after the refusal: once reporting shows it, it would show the refusal too.
    assert (await http.post(f"{intake}/v1/tickets/{ticket['_id']}/notes", json={"note": "已记录"})).status_code == 200

    async def noted() -> list | None:
        view = (await http.get(f"{reporting}/v1/tickets/{ticket['_id']}")).json()
        return view["timeline"] if any(entry["kind"] == "ticket.note_added" for entry in view["timeline"]) else None

    timeline = await eventually(noted, what="the note on the timeline")
    assert [entry for entry in timeline if entry["kind"] == "ticket.command_refused"] == []


def client_from(address: str) -> httpx.AsyncClient:
    """A client connecting from another loopback address: what it gets throttled stays its own, as every instance
    sharing the session's database counts failures per address — the other tests' 127.0.0.1 stays usable."""
    return httpx.AsyncClient(timeout=10, transport=httpx.AsyncHTTPTransport(local_address=address))


async def test_repeated_wrong_keys_are_throttled_per_address(stack, api_key):
    intake = await start_service(stack, "intake")  # blocks on the 21st at once, from its own count (no refresh)
    try:
        async with client_from("127.0.0.2") as client:
            url = f"{intake.base_url}/v1/commands/x"
            answers = [(await client.get(url, headers={"X-API-Key": f"cbk_wrong{n}"})).status_code for n in range(25)]
            assert answers[:20] == [401] * 20 and set(answers[20:]) == {429}
            throttled = await client.get(url, headers={"X-API-Key": api_key})
            assert throttled.status_code == 429 and 0 < int(throttled.headers["Retry-After"]) <= 60
            assert "次数过多" in throttled.json()["detail"]
            # Open311 clients get the spec's error document (XML, the required format), with the wait.
            form = {"api_key": api_key, "service_code": "x", "description": "路灯不亮"}
            open311 = await client.post(f"{intake.base_url}/open311/v2/requests.xml", data=form)
            assert open311.status_code == 429 and 0 < int(open311.headers["Retry-After"]) <= 60
            assert "xml" in open311.headers["content-type"]
            error = ElementTree.fromstring(open311.content).find("error")
            assert error.findtext("code") == "429" and "次数过多" in error.findtext("description")
    finally:
        await intake.stop()


async def test_wrong_keys_spread_over_replicas_get_the_address_throttled_on_all(stack, api_key, http):
    replicas = [await start_service(stack, "intake", key_throttle_refresh_s=0.5) for _ in range(2)]
    try:
        async with client_from("127.0.0.3") as client:
            answers = [(await client.get(f"{replicas[n % 2].base_url}/v1/commands/x",
                                         headers={"X-API-Key": f"cbk_wrong{n}"})).status_code for n in range(20)]
            assert answers == [401] * 20, "ten on each: neither replica has reached twenty on its own"

            async def throttled_on_both() -> list[httpx.Response] | None:
                tried = [await client.get(f"{replica.base_url}/v1/commands/x", headers={"X-API-Key": api_key})
                         for replica in replicas]
                return tried if all(response.status_code == 429 for response in tried) else None

            # Within a refresh interval; the right key asked meanwhile counts no failure.
            for response in await eventually(throttled_on_both, timeout=3, what="the address throttled on both"):
                assert 0 < int(response.headers["Retry-After"]) <= 60 and "次数过多" in response.json()["detail"]
        for replica in replicas:  # from another address the key gets in: a command not (yet) decided
            assert (await http.get(f"{replica.base_url}/v1/commands/x")).status_code == 202
    finally:
        for replica in replicas:
            await replica.stop()


async def test_odd_input_gets_a_4xx_with_a_message(http, services):
    intake, reporting = services["intake"].base_url, services["reporting"].base_url
    for query in ("start_date=0001-01-01T00:00:00%2B14:00", "end_date=9999-12-31T23:59:59-14:00"):
        for path in ("requests", "servicerequestupdates"):
            response = await http.get(f"{intake}/open311/v2/{path}.json?{query}")
            assert response.status_code == 400 and "1970" in response.text, (path, query, response.text)
    command = await http.get(f"{intake}/v1/commands/%F0%9F%98%80")
    assert 400 <= command.status_code < 500 and command.json()["detail"], command.text
    blank = await http.post(f"{intake}/v1/tickets/%20/sign-for", json={})
    assert blank.status_code == 422 and "ticket_id" in blank.text, blank.text
    skip = await http.get(f"{reporting}/v1/tickets?skip=9223372036854775808")
    assert skip.status_code == 422, skip.text


async def test_a_body_shorter_than_its_content_length_does_not_hold_the_connection(stack):
    settings = stack.settings("intake")
    settings.http.body_timeout_s = 1.0
    intake = await serve("intake", build_service("intake", settings), settings.http_port)
    try:
        host, port = intake.base_url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v1/complaints HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"content\":")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)  # read() returns once the server closes
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
    finally:
        await intake.stop()


async def test_a_key_is_listed_by_its_hash_and_revoked(stack, mongo, monkeypatch):
    # The CLI quiets logging for a terminal; in this process that would silence the info lines later tests read.
    monkeypatch.setattr("civicbus.logs.configure_logging", lambda *args, **kwargs: None)
    key = await create_key(mongo, "即将吊销的密钥", Role.system)
    key_id = hash_key(key)[:12]
    runner = CliRunner()
    env = {"CIVICBUS_MONGO_URL": stack.mongo_url, "CIVICBUS_MONGO_DB": stack.db_name}

    async def civicbus(*args: str):  # the command runs its own event loop
        return await asyncio.to_thread(runner.invoke, cli.app, list(args), env=env)

    listed = await civicbus("keys", "list")
    assert listed.exit_code == 0 and key_id in listed.output and key not in listed.output
    assert (await KeyStore(mongo).find(key)) is not None
    assert (await civicbus("keys", "revoke", "zz")).exit_code == 1
    revoked = await civicbus("keys", "revoke", key_id)
    assert revoked.exit_code == 0 and "即将吊销的密钥" in revoked.output and "30 s" in revoked.output
    assert (await KeyStore(mongo).find(key)) is None
    assert "revoked" in next(line for line in (await civicbus("keys", "list")).output.splitlines() if key_id in line)
