"""``civicbus demo``: the whole system on the embedded stack, one morning of events, and what came of them.

The four services run as separate processes, exactly as in production; a local webhook receiver plays the units'
robots. The demo uses its own database (``civicbus_demo``, emptied first) and topics (``demo.``-prefixed), so it
never mixes with a development database.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from civicbus.auth import Role, create_key
from civicbus.district import District
from civicbus.events import STATE_NAMES, TicketState
from civicbus.kafka import create_topics
from civicbus.mongo import create_mongo, database
from civicbus.privacy import mask_personal_data
from civicbus.settings import PROJECT_ROOT, ServiceSettings
from ops import devstack
from ops.services import SERVICES, service_entry
from ops.webhook_receiver import WebhookSink
from services.reporting.workbench.accounts import ROLE_NAMES, AccountStore, checked_account

SCENARIO = Path(__file__).with_name("demo_scenario.yaml")
DEMO_DB = "civicbus_demo"
DEMO_PREFIX = "demo."


def _environment(sink: WebhookSink, service: str, workbench_key: str) -> dict[str, str]:
    shared = {
        **os.environ,
        "CIVICBUS_KAFKA_BOOTSTRAP": devstack.kafka_bootstrap(),
        "CIVICBUS_MONGO_URL": devstack.mongo_url(),
        "CIVICBUS_MONGO_DB": DEMO_DB,
        "CIVICBUS_TOPIC_PREFIX": DEMO_PREFIX,
        "CIVICBUS_WEBHOOK_BASE": sink.base_url,
        # The demo shows what units receive, at whatever hour it runs: quiet hours (免打扰) would hold it till morning.
        "CIVICBUS_QUIET_HOURS": "false",
        "CIVICBUS_LOG_JSON": "true",
    }
    if service == "reporting":
        # Reporting serves the workbench, whose actions go to intake's command API with a key of their own.
        return {**shared, "CIVICBUS_WORKBENCH_KEY": workbench_key, "CIVICBUS_INTAKE_URL": _url("intake", "")}
    return shared


def _start_services(sink: WebhookSink, workbench_key: str) -> dict[str, subprocess.Popen]:
    logs = devstack.home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = {}
    for name in SERVICES:
        with (logs / f"{name}.log").open("ab") as log_file:
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}"],
                cwd=PROJECT_ROOT, env=_environment(sink, name, workbench_key), stdout=log_file,
                stderr=subprocess.STDOUT,
            )
    return processes


def _stop_services(processes: dict[str, subprocess.Popen]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _url(service: str, path: str) -> str:
    return f"http://127.0.0.1:{service_entry(service).settings.default_port}{path}"


async def _wait_ready(client: httpx.AsyncClient, processes: dict[str, subprocess.Popen], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(processes)
    while waiting:
        for name in sorted(waiting):
            if processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited; see {devstack.home() / 'logs' / (name + '.log')}")
            try:
                if (await client.get(_url(name, "/readyz"))).status_code == 200:
                    waiting.discard(name)
            except httpx.TransportError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"not ready after {timeout:.0f} s: {', '.join(sorted(waiting))}")
        await asyncio.sleep(0.5)


# The workbench's demo accounts, one per role: username, name, role, unit or leader (the sample district's).
DEMO_ACCOUNTS = [
    ("zhangsan", "张三", "staff", {"unit": "laobao"}),
    ("wangwu", "王五", "dispatcher", {}),
    ("xuli", "徐丽", "callback", {}),
    ("zhengxiuying", "郑秀英", "leader", {"leader": "zhengxiuying"}),
    ("admin", "管理员", "admin", {}),
]


def demo_password(role: str) -> str:
    return f"demo-{role}-2026"


async def _prepare(district: District) -> tuple[dict[str, dict[str, str]], str]:
    """Topics, an empty database, API keys (the demo's administrator, a unit, the dispatcher, and the workbench's
    key for intake) and the workbench's demo accounts; the keys as headers, and the workbench's key."""
    settings = ServiceSettings(mongo_url=devstack.mongo_url(), mongo_db=DEMO_DB)
    await create_topics(devstack.kafka_bootstrap(), DEMO_PREFIX)
    client = create_mongo(settings)
    try:
        await client.drop_database(DEMO_DB)
        db = database(client, settings)
        accounts = AccountStore(db)
        for username, name, role, where in DEMO_ACCOUNTS:
            await accounts.create(checked_account(district, username, name, role, **where), demo_password(role))
        keys = {
            "admin": {"X-API-Key": await create_key(db, "demo", Role.admin)},
            "laobao": {"X-API-Key": await create_key(db, "劳动保障所 张三", Role.unit, "laobao")},
            "pingan": {"X-API-Key": await create_key(db, "综治中心 王五", Role.unit, "pingan")},
        }
        return keys, await create_key(db, "工作台 (demo)", Role.workbench)
    finally:
        await client.close()


def _accounts_table(district: District) -> Table:
    table = Table("角色", "用户名", "密码", "姓名", "单位 / 职务", title="工作台演示账号 Workbench demo accounts")
    for username, name, role, where in DEMO_ACCOUNTS:
        account = checked_account(district, username, name, role, **where)
        unit = district.units[account.unit].name if account.unit else ""
        title = district.leaders[account.leader].title if account.leader else ""
        table.add_row(ROLE_NAMES[account.role], username, demo_password(role), name, unit or title or "—")
    return table


async def _play(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    scenario = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    sent = 0
    for entry in scenario["events"]:
        for _ in range(entry.get("repeat", 1)):
            response = await client.post(_url("intake", f"/v1/{entry['type']}"), json=entry["body"], headers=headers)
            response.raise_for_status()
            sent += 1
    return sent


async def _settle(client: httpx.AsyncClient, headers: dict[str, str], sink: WebhookSink, sent: int) -> dict[str, Any]:
    """Wait until every event has its tickets and the notifications stop arriving."""
    deadline = time.monotonic() + 60
    last: tuple[int, int, int] = (-1, -1, -1)
    accounted = 0
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        listing = (await client.get(_url("reporting", "/v1/tickets?limit=500"), headers=headers)).json()
        # Every event made a ticket or joined one (an alarm storm, a 重复件): count each source's events once.
        events_by_source: dict[str, int] = {}
        for item in listing["items"]:
            source = item["source_event_id"]
            events_by_source[source] = max(events_by_source.get(source, 0), item.get("event_count", 1))
        accounted = sum(events_by_source.values())
        current = (listing["total"], accounted, len(sink.received))
        if current != last:
            last, stable_since = current, time.monotonic()
        elif accounted >= sent and time.monotonic() - stable_since > 2:
            return listing
        await asyncio.sleep(0.5)
    raise RuntimeError(f"after 60 s only {accounted} of {sent} events are on tickets; see the services' logs")


async def _close_one_loop(
    console: Console, client: httpx.AsyncClient, keys: dict[str, dict[str, str]], items: list[dict[str, Any]],
    units: dict[str, str], zone: ZoneInfo,
) -> None:
    """The closed loop on one ticket: the unit signs for it (twice: the second is refused, with the reason) and
    resolves it, the dispatcher records the citizen's callback; then the ticket's timeline from reporting."""
    ticket = next((item for item in items if item["lead_unit"] == "laobao"), None)
    if ticket is None:
        return
    ticket_id = ticket["ticket_id"]
    steps = [
        ("sign-for", "laobao", {"note": "已安排专人对接"}),
        ("sign-for", "laobao", {}),
        ("resolve", "laobao", {"result": "已约谈企业负责人，追回工资 3.2 万元"}),
        ("callback", "pingan", {"resolved": True, "satisfaction": "satisfied", "note": "市民表示满意"}),
    ]
    table = Table("指令 command", "单位", "结果 outcome", title=f"闭环 Closed loop: {ticket_id}")
    for path, unit, body in steps:
        response = await client.post(_url("intake", f"/v1/tickets/{ticket_id}/{path}"), json=body, headers=keys[unit])
        answer = response.json()
        outcome = answer["state"] if answer["status"] == "applied" else f"拒绝 ({answer['code']})：{answer['message']}"
        table.add_row(path, units[unit], outcome)
    console.print(table)
    await asyncio.sleep(1.5)
    view = (await client.get(_url("reporting", f"/v1/tickets/{ticket_id}"), headers=keys["admin"])).json()
    console.print(_timeline_table(view.get("timeline", []), zone))


def _local(moment: str, zone: ZoneInfo, shape: str = "%m-%d %H:%M") -> str:
    """An instant of the API (ISO 8601, UTC) as people read it: the district's wall-clock time."""
    return datetime.fromisoformat(moment).astimezone(zone).strftime(shape)


def _timeline_table(timeline: list[dict[str, Any]], zone: ZoneInfo) -> Table:
    table = Table("时间", "流转", "操作人", "说明", title=f"流转记录 Timeline (reporting; {zone.key})")
    for entry in sorted(timeline, key=lambda entry: entry["at"]):
        table.add_row(_local(entry["at"], zone, "%H:%M:%S"), entry["kind"].removeprefix("ticket."), entry["actor"],
                      entry["note"][:40])
    return table


def _tickets_table(items: list[dict[str, Any]], units: dict[str, str], zone: ZoneInfo) -> Table:
    table = Table("工单号", "类别", "属地", "主办", "协办", "状态", "事件数", "签收时限", "办结时限", title="工单 Tickets")
    for item in sorted(items, key=lambda ticket: ticket["created_at"]):
        table.add_row(
            item["ticket_id"], item["category_name"], item.get("area_name") or "—",
            units.get(item["lead_unit"], "—"), "、".join(units.get(unit, unit) for unit in item["assist_units"]) or "—",
            STATE_NAMES[TicketState(item["state"])], str(item.get("event_count", 1)),
            _local(item["sign_for_due"], zone),
            _local(item["resolve_due"], zone),
        )
    return table


async def run_demo(console: Console, keep_running: bool) -> int:
    from civicbus.district import load_district

    district = load_district(ServiceSettings().config_dir)
    zone = ZoneInfo(district.timezone)
    units = {unit.id: unit.name for unit in district.units.values()}
    keys, workbench_key = await _prepare(district)
    headers = keys["admin"]
    sink = await WebhookSink().start()
    processes = _start_services(sink, workbench_key)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            console.print("[bold]启动服务[/] intake · triage · notify · reporting …")
            await _wait_ready(client, processes)
            sent = await _play(client, headers)
            console.print(f"[green]✓[/] 已受理事件 {sent} 条 (events accepted by intake, acknowledged by Kafka)")
            listing = await _settle(client, headers, sink, sent)
            console.print(_tickets_table(listing["items"], units, zone))

            messages = Table("接收方", "收到消息", title="通知 Webhook messages received")
            by_path: dict[str, int] = {}
            for item in sink.received:
                by_path[item.path] = by_path.get(item.path, 0) + 1
            for path, count in sorted(by_path.items()):
                messages.add_row(units.get(path.rsplit("/", 1)[-1], path), str(count))
            console.print(messages)
            if sink.received:
                console.rule("消息示例 (a message as the unit's robot received it)")
                console.print(mask_personal_data(sink.received[0].body["text"]), markup=False, highlight=False)

            await _close_one_loop(console, client, keys, listing["items"], units, zone)

            ranked = (await client.get(_url("reporting", "/v1/rankings/unit"), params={"period": "day"},
                                       headers=headers)).json()
            columns = {"routed": "主办", "assisted": "协办", "repeats": "合并重复", "acknowledged": "签收",
                       "resolved": "办结", "satisfied": "满意", "notified": "通知送达", "notify_failed": "通知失败"}
            figures = Table("排名", "单位", "响应率", *columns.values(), title="单位排名 Units ranked by 响应率 (reporting)")
            for item in ranked["items"]:
                figures.add_row(str(item["rank"]), item["name"], f"{item['value']:.0%}",
                                *(str(item["counts"][name]) for name in columns))
            console.print(figures)
            # 响应率 divides by what fell due (应签收): a unit whose tickets are all within their time has none yet.
            waiting = sorted({units.get(item["lead_unit"], item["lead_unit"]) for item in listing["items"]
                              if item["lead_unit"]} - {item["name"] for item in ranked["items"]})
            if waiting:
                console.print(f"尚无应签收工单（均在签收时限内），不参与排名：{'、'.join(waiting)}")
            summary = (await client.get(_url("reporting", "/v1/summary"), params={"period": "day"},
                                        headers=headers)).json()
            total = summary["counts"]
            console.print(f"全街道：工单 {total['created']} 件，其中待人工派单 {total['manual']} 件。")
            console.print(f"API 密钥 (demo key): {headers['X-API-Key']}    reporting: {_url('reporting', '/docs')}")
            console.print(f"工作台 {_url('reporting', '/workbench')}"
                          + ("" if keep_running else "  (--keep-running 保持服务运行后可登录)"))
            console.print(_accounts_table(district))
            if keep_running:
                # The key travels in the URL fragment, which the browser never sends to the server.
                console.print(f"数据驾驶舱 (dashboard): {_url('reporting', '/dashboard')}#key={headers['X-API-Key']}")
                console.print("服务保持运行，按 Ctrl-C 结束 (services keep running; Ctrl-C stops them)")
                await asyncio.Event().wait()
        return 0
    except RuntimeError as error:
        console.print(f"[bold red]demo failed:[/] {error}")
        return 1
    finally:
        _stop_services(processes)
        await sink.stop()
        console.print("服务已停止；Kafka 与 FerretDB 仍在运行（`civicbus dev down` 可停止）。")
