"""The ``civicbus`` command line: the development stack, topics, services, API keys, configuration, the demo."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar
from zoneinfo import ZoneInfo

import orjson
import typer
from rich.table import Table

from civicbus.dlq import Letter, LetterFilter, Replayed, parse_place, read_letters, replay
from civicbus.privacy import mask_personal_data
from civicbus.terminal import console, err_console, fail
from ops import devstack
from ops.services import SERVICES
from services.reporting.cli import reporting_app
from services.reporting.workbench.cli import workbench_app
from services.triage.learned_cli import classifier_app

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

T = TypeVar("T")

app = typer.Typer(help="civicbus — event hub for grassroots governance (基层治理事件中枢).", no_args_is_help=True)
dev_app = typer.Typer(help="The embedded development stack: Kafka (KRaft) and FerretDB.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of the topic registry.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (API 密钥).", no_args_is_help=True)
config_app = typer.Typer(help="The domain configuration (辖区配置).", no_args_is_help=True)
routes_app = typer.Typer(help="The routing tree (派单规则).", no_args_is_help=True)
level_app = typer.Typer(help="The response level (响应级别): normal or heightened (一级响应).", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters (死信) on civic.dlq: list, show, replay.", no_args_is_help=True)
calendar_app = typer.Typer(help="The working calendar (工作日历): holidays and 调休 days.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")
app.add_typer(topics_app, name="topics")
app.add_typer(keys_app, name="keys")
app.add_typer(config_app, name="config")
app.add_typer(routes_app, name="routes")
app.add_typer(level_app, name="response-level")
app.add_typer(dlq_app, name="dlq")
app.add_typer(calendar_app, name="calendar")
app.add_typer(classifier_app, name="classifier")
app.add_typer(reporting_app, name="reporting")
app.add_typer(workbench_app, name="workbench")


@app.callback()
def _quiet_logs() -> None:
    """Commands print what they mean to say; library chatter only when something is wrong."""
    from civicbus.logs import configure_logging

    configure_logging("WARNING")


# --------------------------------------------------------------------------- dev


@dev_app.command("up")
def dev_up() -> None:
    """Install what is missing (Kafka jars, FerretDB binary; cached), start both, wait until they answer."""
    try:
        for line in devstack.up():
            console.print(f"[green]✓[/] {line}")
        created = asyncio.run(_create_topics(devstack.kafka_bootstrap(), "", 1))
        console.print(f"[green]✓[/] topics: {', '.join(created) if created else 'all present'}")
    except devstack.DevStackError as error:
        fail(str(error))


@dev_app.command("down")
def dev_down() -> None:
    """Stop Kafka and FerretDB (their data is kept)."""
    for line in devstack.down():
        console.print(line)


@dev_app.command("reset")
def dev_reset() -> None:
    """Stop the stack and delete its data (installed jars and binaries are kept)."""
    devstack.reset()
    console.print("stack stopped and data deleted")


@dev_app.command("status")
def dev_status() -> None:
    """Show whether Kafka and FerretDB are running and answering."""
    table = Table("component", "address", "state")
    for row in devstack.status():
        table.add_row(*row)
    console.print(table)


@dev_app.command("logs")
def dev_logs(
    component: Annotated[str, typer.Argument(help="kafka, ferretdb, or a service of the demo")] = "kafka",
    lines: Annotated[int, typer.Option("-n", help="last lines")] = 50,
) -> None:
    """Print the last lines of a component's log."""
    path = devstack.home() / "logs" / f"{component}.log"
    if not path.exists():
        fail(f"no log at {path}")
    console.print("\n".join(path.read_text(errors="replace").splitlines()[-lines:]), markup=False, highlight=False)


# --------------------------------------------------------------------------- topics


async def _create_topics(bootstrap: str, prefix: str, replication_factor: int) -> list[str]:
    from civicbus.kafka import create_topics

    return await create_topics(bootstrap, prefix, replication_factor)


@topics_app.command("create")
def topics_create(
    prefix: Annotated[str, typer.Option(help="topic name prefix (CIVICBUS_TOPIC_PREFIX)")] = "",
    replication_factor: Annotated[int, typer.Option(help="replicas per partition (1 for one broker)")] = 1,
) -> None:
    """Create the registry's topics that do not exist yet (idempotent)."""
    from civicbus.settings import ServiceSettings

    settings = ServiceSettings()
    created = asyncio.run(_create_topics(settings.kafka_bootstrap, prefix or settings.topic_prefix, replication_factor))
    console.print(f"created: {', '.join(created)}" if created else "all topics exist")


@topics_app.command("describe")
def topics_describe(examples: Annotated[bool, typer.Option(help="print an example payload per schema")] = False) -> None:
    """The topic registry: names, keys, schemas, producers, consumers."""
    from civicbus.topics import ALL_TOPICS

    table = Table("topic", "partitions", "key", "schemas", "producers → consumers")
    for topic in ALL_TOPICS:
        table.add_row(
            topic.name, str(topic.partitions), topic.key, ", ".join(schema.__name__ for schema in topic.schemas),
            f"{', '.join(topic.producers)} → {', '.join(topic.consumers)}",
        )
    console.print(table)
    if examples:
        for topic in ALL_TOPICS:
            for example in topic.examples:
                console.rule(f"{topic.name}: {example.kind}")
                console.print_json(example.model_dump_json())


# --------------------------------------------------------------------------- services


@app.command("run")
def run(service: Annotated[str, typer.Argument(help=" | ".join(SERVICES))]) -> None:
    """Run one service in the foreground (settings from CIVICBUS_* environment variables)."""
    if service not in SERVICES:
        fail(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    from civicbus.district import DistrictConfigError
    from civicbus.service import serve
    from ops.services import service_entry

    try:
        entry = service_entry(service)
        settings = entry.settings()
        serve(entry.create_app(settings), settings)
    except DistrictConfigError as error:
        fail(f"invalid configuration: {error}")


@app.command("asyncapi")
def asyncapi(
    service: Annotated[str, typer.Argument(help=" | ".join(SERVICES))],
    output: Annotated[Optional[Path], typer.Option("-o", help="write to this file instead of stdout")] = None,
) -> None:
    """Print the AsyncAPI document of a service's Kafka interface."""
    from civicbus.service import asyncapi_document
    from ops.services import build_service

    if service not in SERVICES:
        fail(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    fastapi_app = build_service(service)
    document = orjson.dumps(asyncapi_document(fastapi_app.state.runtime), option=orjson.OPT_INDENT_2)
    if output:
        output.write_bytes(document)
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(document.decode() + "\n")


# --------------------------------------------------------------------------- keys


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who uses the key (a system or a person)")],
    role: Annotated[str, typer.Option(help="admin, leader, unit, auditor, system or open311")] = "system",
    unit: Annotated[str, typer.Option(help="the unit id, for role unit")] = "",
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from civicbus.auth import Role, create_key
    from civicbus.mongo import create_mongo, database
    from civicbus.settings import ServiceSettings

    try:
        chosen = Role(role)
    except ValueError:
        fail(f"unknown role {role!r}; choose one of {', '.join(item.value for item in Role)}")

    async def create() -> str:
        settings = ServiceSettings()
        client = create_mongo(settings)
        try:
            return await create_key(database(client, settings), name, chosen, unit)
        finally:
            await client.close()

    console.print(asyncio.run(create()), markup=False, highlight=False)


async def _with_keys_db(work: Callable[[AsyncDatabase], Awaitable[T]]) -> T:
    from civicbus.mongo import create_mongo, database
    from civicbus.settings import ServiceSettings

    settings = ServiceSettings()
    client = create_mongo(settings)
    try:
        return await work(database(client, settings))
    finally:
        await client.close()


@keys_app.command("list")
def keys_list() -> None:
    """List the keys (never the keys themselves: the start of each hash identifies one for ``revoke``)."""
    from civicbus.auth import list_keys

    table = Table("id (hash)", "name", "role", "unit", "created", "state")
    for item in asyncio.run(_with_keys_db(list_keys)):
        state = "revoked 已吊销" if item.get("disabled") else "active"
        created = item.get("created_at")
        table.add_row(item["_id"][:12], item["name"], item["role"], item.get("unit", ""),
                      created.strftime("%Y-%m-%d %H:%M") if created else "", state)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the id shown by `civicbus keys list` (hash prefix)")]
                ) -> None:
    """Revoke a key. Running services stop accepting it within 30 s (they remember a key's answer that long)."""
    from civicbus.auth import revoke_key

    if not re.fullmatch(r"[0-9a-f]{8,64}", key_id):
        fail("the id is the first 8 or more hex digits of the hash shown by `civicbus keys list`")
    revoked = asyncio.run(_with_keys_db(lambda db: revoke_key(db, key_id)))
    if len(revoked) != 1:
        fail(f"{len(revoked)} keys match {key_id!r}: give exactly one" if revoked else f"no key {key_id!r}")
    console.print(f"revoked: {revoked[0]} (services stop accepting it within 30 s)")


# --------------------------------------------------------------------------- dead letters

ServiceFilter = Annotated[str, typer.Option("--service", help="only letters of this service (intake, triage…)")]
KindFilter = Annotated[str, typer.Option("--error-kind", help="invalid or processing")]
SinceFilter = Annotated[Optional[str], typer.Option(help="dead-lettered at or after (ISO 8601; local time of the "
                                                        "district without an offset)")]
UntilFilter = Annotated[Optional[str], typer.Option(help="dead-lettered before (ISO 8601)")]
PrefixOption = Annotated[Optional[str], typer.Option("--prefix", help="topic name prefix; default "
                                                          "CIVICBUS_TOPIC_PREFIX")]


def _district_zone() -> ZoneInfo:
    """The district's time zone: times are shown in it, and read in it when they carry no offset."""
    from civicbus.district import load_district
    from civicbus.settings import ServiceSettings

    return ZoneInfo(load_district(ServiceSettings().config_dir).timezone)


def _letter_filter(service: str, error_kind: str, since: str | None, until: str | None) -> LetterFilter:
    if error_kind not in ("", "invalid", "processing"):
        fail(f"--error-kind {error_kind!r}: invalid or processing")
    zone = _district_zone() if since or until else None

    def moment(option: str, text: str | None) -> datetime | None:
        if not text:
            return None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            fail(f"{option} {text!r}: 应为 ISO 8601 时间，例如 2026-11-25 或 2026-11-25T08:00 (ISO 8601 expected)")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)

    return LetterFilter(service, error_kind, moment("--since", since), moment("--until", until))


def _settings_and_prefix(prefix: str | None) -> tuple[ServiceSettings, str]:
    from civicbus.settings import ServiceSettings

    settings = ServiceSettings()
    return settings, settings.topic_prefix if prefix is None else prefix


def _read_letters(prefix: str | None, letter_filter: LetterFilter, place: str | None = None) -> list[Letter]:
    settings, topic_prefix = _settings_and_prefix(prefix)
    try:
        chosen = parse_place(place) if place else None
        reading = asyncio.run(read_letters(settings.kafka_bootstrap, topic_prefix, letter_filter, chosen))
    except (ValueError, LookupError) as error:
        fail(str(error))
    if reading.unreadable:
        err_console.print(f"[yellow]不是死信的记录 (records that are no dead letter), skipped:[/] "
                          f"{', '.join(reading.unreadable)}")
    if place and not reading.letters:
        fail(f"{place}: 没有这条死信 (no dead letter at this partition and offset)")
    return reading.letters


@dlq_app.command("list")
def dlq_list(service: ServiceFilter = "", error_kind: KindFilter = "", since: SinceFilter = None,
             until: UntilFilter = None, prefix: PrefixOption = None) -> None:
    """The dead letters on the topic now, oldest first per partition (personal data masked)."""
    letters = _read_letters(prefix, _letter_filter(service, error_kind, since, until))
    zone = _district_zone()
    table = Table("位置 place", f"时间 at ({zone.key})", "服务 service", "类型 kind", "原因 reason", "原记录 original")
    for letter in letters:
        dead = letter.dead
        table.add_row(letter.place, f"{dead.recorded_at.astimezone(zone):%Y-%m-%d %H:%M:%S}", dead.service,
                      dead.error_kind, mask_personal_data(dead.reason), letter.original_place)
    console.print(table)
    console.print(f"{len(letters)} 条死信 (dead letters)")


@dlq_app.command("show")
def dlq_show(place: Annotated[str, typer.Argument(help="PARTITION:OFFSET on the DLQ topic, as `dlq list` shows")],
             prefix: PrefixOption = None) -> None:
    """One dead letter in full (personal data masked)."""
    [letter] = _read_letters(prefix, LetterFilter(), place)
    dead = letter.dead
    rows = {"位置 place": letter.place, "死信 event_id": dead.event_id,
            "时间 at": dead.recorded_at.astimezone(_district_zone()).isoformat(),
            "服务 service": dead.service, "类型 kind": dead.error_kind, "原因 reason": mask_personal_data(dead.reason),
            "原记录 original": letter.original_place,
            "键 key": mask_personal_data(dead.original_key) if dead.original_key is not None else "(none)",
            "关联 correlation_id": dead.correlation_id}
    for name, value in rows.items():
        console.print(f"[bold]{name}[/]  {value}", highlight=False)
    console.print("[bold]消息头 headers[/]", highlight=False)
    for name, value in dead.original_headers.items():
        console.print(f"  {name}: {mask_personal_data(value)}", markup=False, highlight=False)
    console.print("[bold]原始内容 value[/]", highlight=False)
    console.print(letter.shown_value(), markup=False, highlight=False)


@dlq_app.command("replay")
def dlq_replay(
    place: Annotated[Optional[str], typer.Argument(help="PARTITION:OFFSET of one letter; else the filters choose")] = None,
    service: ServiceFilter = "", error_kind: KindFilter = "", since: SinceFilter = None, until: UntilFilter = None,
    prefix: PrefixOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Publish the letters' original records again to their original topics, with their key and headers — each
    letter once (recorded in MongoDB, dlq_replays): a letter replayed before is skipped."""
    from civicbus.mongo import create_mongo, database

    if place and (service or error_kind or since or until):
        fail("either PARTITION:OFFSET or filters, not both")
    letters = _read_letters(prefix, _letter_filter(service, error_kind, since, until), place)
    if not letters:
        console.print("没有符合条件的死信 (no dead letters match)")
        return
    if not yes and not typer.confirm(f"重放 {len(letters)} 条死信 (replay {len(letters)} dead letters)?"):
        raise typer.Exit(1)
    settings, topic_prefix = _settings_and_prefix(prefix)

    async def run_replay() -> list[Replayed]:
        client = create_mongo(settings)
        try:
            return await replay(settings.kafka_bootstrap, topic_prefix, database(client, settings), letters)
        finally:
            await client.close()

    results = asyncio.run(run_replay())
    table = Table("位置 place", "结果 outcome", "详情 detail")
    for result in results:
        table.add_row(result.letter.place, result.outcome, result.detail)
    console.print(table)
    if any(result.outcome == "failed" for result in results):
        raise typer.Exit(1)


# --------------------------------------------------------------------------- config


@calendar_app.command("check")
def calendar_check(
    folder: Annotated[Optional[Path], typer.Argument(help="default: CIVICBUS_CONFIG_DIR")] = None,
    year: Annotated[Optional[list[int]], typer.Option(help="years to check; default: this year and the next")] = None,
) -> None:
    """Say which years have no holiday data and which festivals' days off deadlines.yaml must add (exit 1 if any)."""
    from civicbus.district import DistrictConfigError, load_district
    from civicbus.settings import ServiceSettings
    from civicbus.workcalendar import WorkingCalendar, calendar_gaps

    try:
        district = load_district(folder or ServiceSettings().config_dir)
    except DistrictConfigError as error:
        fail(str(error))
    calendar = WorkingCalendar(district.deadlines, district.timezone)
    this_year = datetime.now(calendar.zone).year
    years = year or [this_year, this_year + 1]
    gaps = calendar_gaps(calendar, years)
    for checked in years:
        if checked not in gaps:
            console.print(f"[green]✓[/] {checked}: 法定节假日已知 (holidays known)")
    for missing, anchors in gaps.items():
        console.print(f"[red]✗[/] {missing}: 无法定节假日数据，时限将按周一至周五计算 (no holiday data: deadlines "
                      f"would count Monday to Friday)")
        console.print("  按国务院办公厅当年通知，在 deadlines.yaml 的 holidays 中加入以下节日的放假日期，"
                      "在 working_days 中加入调休上班日 (add the days off around these festivals to holidays, "
                      "the 调休 working days to working_days, as the State Council's notice sets them):")
        for day, name in anchors:
            console.print(f"    {day.isoformat()}  {name}")
    if gaps:
        raise typer.Exit(1)


@config_app.command("check")
def config_check(folder: Annotated[Optional[Path], typer.Argument(help="default: CIVICBUS_CONFIG_DIR")] = None) -> None:
    """Validate a configuration folder — the shared files and every service's own — and summarise it."""
    from civicbus.district import DistrictConfigError, UnitKind, load_district
    from civicbus.settings import ServiceSettings
    from services.intake.open311_catalog import load_catalog
    from services.intake.upstream import load_mappings
    from services.notify.config import load_notify_config
    from services.reporting.config import load_reporting_config
    from services.triage.routing_config import load_routing

    try:
        district = load_district(folder or ServiceSettings().config_dir)
        # Each service's files by the loader the service starts and reloads with: what fails here fails there.
        routing = load_routing(district)
        notify = load_notify_config(district).file
        catalog, mappings = load_catalog(district.folder, district), load_mappings(district.folder, district)
        load_reporting_config(district.folder)
    except DistrictConfigError as error:
        fail(str(error))
    kinds = {kind: sum(1 for unit in district.units.values() if unit.kind is kind) for kind in UnitKind}
    console.print(
        f"[green]✓[/] {district.name}: {len(district.leaders)} leaders, "
        + ", ".join(f"{count} {kind.value}" for kind, count in kinds.items())
        + f", {len(district.areas)} areas, {len(district.category_by_code)} categories"
    )
    policies = len(notify.escalation.policies) if notify.escalation else 0
    console.print(f"[green]✓[/] triage: {len(routing.route.routes)} routing branches; "
                  f"notify: {policies} escalation policies, {len(notify.fallback)} fallback channels")
    open311 = f"Open311 {len(catalog.services)} services" if catalog else "no Open311"
    console.print(f"[green]✓[/] intake: {open311}; upstream platforms: {', '.join(sorted(mappings)) or 'none'}")


@routes_app.command("test")
def routes_test(
    text: Annotated[str, typer.Option("--text", "-t", help="the event's text (Chinese)")] = "",
    address: Annotated[str, typer.Option(help="address text")] = "",
    lat: Annotated[Optional[float], typer.Option(help="latitude")] = None,
    lon: Annotated[Optional[float], typer.Option(help="longitude")] = None,
    crs: Annotated[str, typer.Option(help="wgs84, or gcj02 for 高德/腾讯 coordinates")] = "wgs84",
    kind: Annotated[str, typer.Option(help="complaint, alarm or inspection")] = "complaint",
    severity: Annotated[str, typer.Option(help="low, normal, high, critical")] = "normal",
    source: Annotated[str, typer.Option(help="the sending system")] = "12345",
    upstream_code: Annotated[str, typer.Option(help="a 12345 category code")] = "",
    alarm_type: Annotated[str, typer.Option(help="for alarms: smoke, gas, water_quality…")] = "",
    inspection_type: Annotated[str, typer.Option(help="for inspections: 安全生产, 生态环保…")] = "",
    config: Annotated[Optional[Path], typer.Option(help="configuration folder; default CIVICBUS_CONFIG_DIR")] = None,
) -> None:
    """Show what triage would decide for an event — category, area, route, units, deadlines — and why,
    without running any service (like `amtool config routes test`)."""
    from pydantic import ValidationError

    from civicbus.district import DistrictConfigError, load_district
    from civicbus.events import INCOMING_ADAPTER
    from civicbus.settings import ServiceSettings
    from services.triage.decide import TriageEngine

    data: dict[str, object] = {"content": text or address or "（无内容）", "address": address, "severity": severity}
    if lat is not None and lon is not None:
        data["location"] = {"lat": lat, "lon": lon, "crs": crs}
    kinds = {
        "complaint": ("complaint.received", {"upstream_category": upstream_code}),
        "alarm": ("alarm.raised", {"device_id": "cli", "alarm_type": alarm_type or "unknown"}),
        "inspection": ("inspection.reported", {"inspection_type": inspection_type or "综合查一次"}),
    }
    if kind not in kinds:
        fail(f"unknown kind {kind!r}; choose complaint, alarm or inspection")
    event_kind, extra = kinds[kind]
    try:
        district = load_district(config or ServiceSettings().config_dir)
        engine = TriageEngine(district)  # with triage's routing.yaml
        event = INCOMING_ADAPTER.validate_python({"kind": event_kind, "source": source, "data": {**data, **extra}})
    except (DistrictConfigError, ValidationError) as error:
        fail(str(error))
    decision = engine.decide(event)
    evidence = decision.classification.evidence
    console.print(f"[bold]类别 category[/]  {district.category_path(decision.classification.code)} "
                  f"({decision.classification.code}) — {evidence.method}, confidence {evidence.confidence:.2f}"
                  + (f", keywords {'、'.join(evidence.keywords)}" if evidence.keywords else ""))
    console.print(f"[bold]属地 area[/]      {decision.located.area.name if decision.located.area else '—'} — "
                  f"{decision.located.evidence.method}: {decision.located.evidence.detail}")
    console.print("[bold]labels[/]         " + ", ".join(f'{key}="{value}"' for key, value in decision.labels.items()))
    zone = ZoneInfo(district.timezone)
    for ticket in decision.tickets:
        units = lambda ids: "、".join(district.units[unit].name for unit in ids) or "—"  # noqa: E731
        console.rule(f"工单 {ticket.ticket_id}")
        console.print(f"route       {' › '.join(ticket.explanation.route_path)}")
        if ticket.explanation.manual_reason:
            console.print(f"[yellow]人工派单[/]    {ticket.explanation.manual_reason} → {district.dispatcher.name}")
        else:
            leader = district.leaders[ticket.leader]
            console.print(f"主办 lead    {units([ticket.lead_unit])}\n协办 assist  {units(ticket.assist_units)}\n"
                          f"分管领导     {leader.name}（{leader.title}）")
        console.print(f"时限 policy  {ticket.deadline_policy}: 签收 {ticket.sign_for_due.astimezone(zone):%Y-%m-%d %H:%M}, "
                      f"办结 {ticket.resolve_due.astimezone(zone):%Y-%m-%d %H:%M}")


@level_app.command("show")
def response_level_show(
    key: Annotated[str, typer.Option(envvar="CIVICBUS_API_KEY", help="an API key")],
    url: Annotated[str, typer.Option(help="triage's base URL")] = "http://127.0.0.1:8082",
) -> None:
    """Show the response level in force."""
    _print_level(_call_triage("GET", f"{url}/v1/response-level", key))


@level_app.command("set")
def response_level_set(
    level: Annotated[str, typer.Argument(help="normal (常态) or heightened (一级响应)")],
    key: Annotated[str, typer.Option(envvar="CIVICBUS_API_KEY", help="a leader's or administrator's API key")],
    reason: Annotated[str, typer.Option(help="why, e.g. 国庆假期一级响应")] = "",
    url: Annotated[str, typer.Option(help="triage's base URL")] = "http://127.0.0.1:8082",
) -> None:
    """Switch the response level: heightened shortens deadlines and escalation for tickets created while on."""
    _print_level(_call_triage("PUT", f"{url}/v1/response-level", key, {"level": level, "reason": reason}))


def _call_triage(method: str, url: str, key: str, body: dict[str, str] | None = None) -> dict[str, object]:
    import httpx

    try:
        response = httpx.request(method, url, json=body, headers={"X-API-Key": key}, timeout=10)
    except httpx.TransportError as error:
        fail(f"triage does not answer at {url}: {error}")
    if response.status_code >= 400:
        detail = response.json().get("detail", response.text) if response.content else response.reason_phrase
        fail(f"HTTP {response.status_code}: {detail}")
    return response.json()


def _print_level(body: dict[str, object]) -> None:
    console.print(f"响应级别 response level: [bold]{body['name']}[/] ({body['level']})"
                  + (f" — {body['reason']}" if body.get("reason") else "")
                  + (f"，由 {body['set_by']} 于 {body['set_at']} 设置" if body.get("set_by") else ""))


# --------------------------------------------------------------------------- demo


@app.command("demo")
def demo(
    keep_running: Annotated[bool, typer.Option(help="leave the services running after the figures")] = False,
) -> None:
    """Start the stack and the four services, play a morning of events, show tickets, messages and figures."""
    from ops.demo import run_demo

    try:
        devstack.up()
    except devstack.DevStackError as error:
        fail(str(error))
    raise typer.Exit(asyncio.run(run_demo(console, keep_running)))


if __name__ == "__main__":
    app()
