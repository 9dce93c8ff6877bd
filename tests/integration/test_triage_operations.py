"""Triage operations through the real broker and store: the response level, and rules reloaded without a restart."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import datetime

import pytest

from civicbus.auth import Role, create_key
from civicbus.kafka import create_topics
from civicbus.settings import DEFAULT_CONFIG_DIR

from .conftest import Stack, eventually, start_service

pytestmark = pytest.mark.integration


async def _post_and_get_ticket(http, services, mongo, body: dict) -> dict:
    response = await http.post(f"{services['intake'].base_url}/v1/complaints", json=body)
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    return await eventually(lambda: mongo["tickets"].find_one({"source_event_id": event_id}), what="the ticket")


async def test_a_leader_switches_the_response_level_and_new_tickets_get_shorter_deadlines(http, services, mongo):
    triage = services["triage"].base_url
    body = {"content": "超市卖过期食品"}  # no place: never a 重复件 of the earlier one
    normal = await _post_and_get_ticket(http, services, mongo, body)
    assert normal["response_level"] == "normal"

    unit_key = await create_key(mongo, "unit-clerk", Role.unit, "scjg")
    refused = await http.put(f"{triage}/v1/response-level", json={"level": "heightened"},
                             headers={"X-API-Key": unit_key})
    assert refused.status_code == 403 and "无权操作" in refused.json()["detail"]

    leader_key = await create_key(mongo, "王建国", Role.leader)
    switched = await http.put(f"{triage}/v1/response-level", headers={"X-API-Key": leader_key},
                              json={"level": "heightened", "reason": "国庆假期一级响应"})
    assert switched.status_code == 200
    assert switched.json() | {"set_at": None} == {
        "level": "heightened", "name": "一级响应", "reason": "国庆假期一级响应", "set_by": "王建国", "set_at": None,
    }
    try:
        heightened = await _post_and_get_ticket(http, services, mongo, body)
        assert heightened["response_level"] == "heightened"
        allowed = lambda ticket, due: ticket[due] - ticket["created_at"]  # noqa: E731
        assert allowed(heightened, "sign_for_due") < allowed(normal, "sign_for_due")
        assert allowed(heightened, "resolve_due") < allowed(normal, "resolve_due")
    finally:
        await http.put(f"{triage}/v1/response-level", json={"level": "normal"}, headers={"X-API-Key": leader_key})
    shown = (await http.get(f"{triage}/v1/response-level")).json()
    assert shown["level"] == "normal" and shown["name"] == "常态"


async def test_routing_rules_reload_without_a_restart_and_a_broken_file_changes_nothing(stack: Stack, mongo, http, tmp_path):
    folder = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, folder, ignore=shutil.ignore_patterns("training"))
    isolated = Stack(stack.bootstrap, stack.mongo_url, f"t{uuid.uuid4().hex[:8]}.", stack.db_name)
    await create_topics(isolated.bootstrap, isolated.prefix)
    intake = await start_service(isolated, "intake", config_dir=folder)
    triage = await start_service(isolated, "triage", config_dir=folder)
    try:
        async def routed_to(text: str) -> str:
            response = await http.post(f"{intake.base_url}/v1/complaints", json={"content": text})
            event_id = response.json()["event_id"]
            ticket = await eventually(lambda: mongo["tickets"].find_one({"source_event_id": event_id}), what="ticket")
            return ticket["lead_unit"]

        assert await routed_to("接到冒充客服电话被骗了") == "paichusuo"

        routing = folder / "routing.yaml"
        text = routing.read_text(encoding="utf-8")
        assert "lead: paichusuo" in text
        await asyncio.sleep(1.1)  # a new modification time
        routing.write_text(text.replace("lead: paichusuo", "lead: pingan"), encoding="utf-8")

        async def reloaded() -> bool:
            return await routed_to(f"冒充客服诈骗 {datetime.now():%H%M%S%f}") == "pingan"

        await eventually(reloaded, timeout=20, what="the new rule in force")

        routing.write_text(text.replace("lead: paichusuo", "lead: no-such-unit"), encoding="utf-8")
        await asyncio.sleep(4)  # past a reload check
        assert await routed_to("刷单返利被骗") == "pingan", "the broken file was refused; the rules in force stay"
        assert (await http.get(f"{triage.base_url}/readyz")).status_code == 200
    finally:
        await intake.stop()
        await triage.stop()
