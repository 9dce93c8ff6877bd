"""The configuration watch: what counts as a change of the district's folder, and notify and intake following it as
triage and reporting do (a changed file applies without a restart, a broken one leaves the configuration in force)."""

import asyncio
import os
import shutil
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace

import yaml
from structlog.testing import capture_logs

from civicbus.district import load_district
from civicbus.events import (
    CategoryEvidence,
    EventKind,
    LocationEvidence,
    RoutingExplanation,
    Severity,
    Ticket,
    TicketEvent,
    TicketState,
)
from civicbus.logs import configure_logging
from civicbus.service import _config_stamp, watch_district
from services.notify.app import ChannelAdapters
from services.notify.handler import NotifyHandler
from services.notify.in_force import InForce
from services.notify.timers import Timer, Timers


def test_the_watch_sees_files_in_sub_folders_and_ignores_folders(tmp_path):
    (tmp_path / "district.yaml").write_text("version: 1\n")
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "classifier.joblib"
    model.write_bytes(b"v1")
    before = _config_stamp(tmp_path)
    assert [name for name, _, _ in before] == ["district.yaml", "models/classifier.joblib"]

    model.write_bytes(b"model v2")  # a retrained classifier
    os.utime(model, ns=(before[1][1] + 10**9, before[1][1] + 10**9))
    assert _config_stamp(tmp_path) != before


# Notify follows the watch as triage and reporting do: its InForce.use is the listener (services/notify/app.py).

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "sample"
BASE = "https://gd.shifan.example.gov.cn"
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def _edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _routed(lead: str = "laobao") -> TicketEvent:
    ticket = Ticket(
        ticket_id=f"SF{uuid.uuid4().hex[:12].upper()}", state=TicketState.routed,
        event_kind=EventKind.complaint_received, event_source="12345", source_event_id=str(uuid.uuid4()),
        title="拖欠工资", content="公司拖欠工资三个月", severity=Severity.normal, category="labor",
        category_name="劳动保障", lead_unit=lead, leader="zhengxiuying", sign_for_due=T0 + timedelta(hours=1),
        resolve_due=T0 + timedelta(days=5), created_at=T0,
        explanation=RoutingExplanation(route_path=["默认"], location=LocationEvidence(method="none"),
                                       category=CategoryEvidence(method="keywords", confidence=1)),
    )
    return TicketEvent(kind=EventKind.ticket_routed, source="civicbus.triage", occurred_at=T0, ticket=ticket,
                       correlation_id=ticket.source_event_id)


async def _until(check, seconds: float = 20.0) -> None:  # generous: a busy 2-core CI machine; passing is quick
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the watch did not get there in time")


async def test_notify_picks_up_changed_recipients_channels_and_quiet_hours_and_keeps_them_when_a_file_breaks(tmp_path):
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE, folder)
    in_force = InForce(load_district(folder), BASE)
    runtime = SimpleNamespace(district=in_force.current.district, on_district_change=[in_force.use])
    handler = NotifyHandler(in_force, None, None)
    watch = asyncio.create_task(watch_district(runtime, interval=0.02))
    await asyncio.sleep(0.05)  # the watch has taken the files' stamp
    try:
        robot = "http://127.0.0.1:18080/robot/laobao-new"
        _edit_yaml(folder / "district.yaml", lambda data: next(
            unit for unit in data["units"] if unit["id"] == "laobao").update(
                channels=[{"type": "webhook", "url": robot}], contacts=[]))
        _edit_yaml(folder / "notify.yaml", lambda data: data["quiet_hours"].update(start="21:00"))
        await _until(lambda: in_force.current.notify.file.quiet_hours.start == time(21, 0))
        assert [delivery.channel.url for delivery in handler.deliveries(_routed("laobao"))] == [robot]
        assert runtime.district is in_force.current.district

        in_force_before = in_force.current
        with capture_logs() as logs:
            # An e-mail channel with no SMTP server: district.yaml loads, notify's own check refuses it.
            _edit_yaml(folder / "notify.yaml", lambda data: data.pop("smtp"))
            _edit_yaml(folder / "district.yaml", lambda data: next(
                unit for unit in data["units"] if unit["id"] == "laobao").update(
                    channels=[{"type": "email", "to": ["laobao@shifan.example.gov.cn"]}]))
            await _until(lambda: any(entry["log_level"] == "error" for entry in logs))
        # The watch may also have seen the first of the two edits alone (every stamp it sees is loaded).
        errors = [entry for entry in logs if entry["log_level"] == "error"]
        assert all("继续使用原配置" in error["event"] for error in errors)
        assert any("smtp" in error["error"] for error in errors)
        assert in_force.current is in_force_before, "the configuration in force stays"
        assert [delivery.channel.url for delivery in handler.deliveries(_routed("laobao"))] == [robot]
    finally:
        watch.cancel()


def test_a_timer_whose_unit_the_configuration_no_longer_knows_is_skipped_and_the_others_still_send():
    timers = Timers(None, InForce(load_district(SAMPLE), BASE), None)
    kept, gone = _routed("laobao").ticket, _routed("disbanded").ticket  # a unit a reload removed since

    def remind(ticket: Ticket) -> Timer:
        return Timer("remind", ticket.ticket_id, "sign_for", "0.8", ticket.sign_for_due, T0 + timedelta(minutes=48))

    with capture_logs() as logs:
        planned = timers._due_deliveries([remind(gone), remind(kept)], {kept.ticket_id: kept, gone.ticket_id: gone},
                                         T0 + timedelta(minutes=50))
    assert planned and {delivery.recipient for delivery in planned} == {"laobao"}
    assert [entry["log_level"] for entry in logs if "跳过" in entry["event"]] == ["warning"]


def test_an_email_adapter_is_made_again_when_a_reload_changes_the_mail_server(tmp_path):
    from services.notify.channels.email import EmailChannel

    folder = tmp_path / "district"
    shutil.copytree(SAMPLE, folder)
    in_force = InForce(load_district(folder), BASE)
    adapters = ChannelAdapters(in_force, client=None)
    mailbox = EmailChannel(type="email", to=["laobao@shifan.example.gov.cn"])
    robot = in_force.current.notify.file.fallback[0]
    first_mail, first_robot = adapters(mailbox), adapters(robot)
    assert adapters(mailbox) is first_mail, "kept while nothing changes"

    _edit_yaml(folder / "notify.yaml", lambda data: data["smtp"].update(host="smtp.shifan.example.gov.cn"))
    in_force.use(load_district(folder))
    assert adapters(mailbox) is not first_mail and adapters(robot) is first_robot


def test_notify_registers_its_configuration_with_the_watch(tmp_path):
    from services.notify.app import create_app
    from services.notify.settings import NotifySettings

    folder = tmp_path / "district"
    shutil.copytree(SAMPLE, folder)
    app = create_app(NotifySettings(config_dir=folder))
    runtime, in_force = app.state.runtime, app.state.in_force
    assert watch_district in runtime.background and runtime.on_district_change == [in_force.use]
    _edit_yaml(folder / "notify.yaml", lambda data: data["reminders"].update(at_fractions=[0.5, 0.9]))
    for listener in runtime.on_district_change:
        listener(load_district(folder))
    assert in_force.current.notify.file.reminders.at_fractions == [0.5, 0.9]


# Intake follows the watch too: its Open311 catalogue and its upstream platforms' mappings (services/intake/app.py).


def _intake(folder: Path):
    from services.intake.app import create_app
    from services.intake.settings import IntakeSettings

    app = create_app(IntakeSettings(config_dir=folder))
    assert watch_district in app.state.runtime.background
    return app


def _intake_client(app):
    import httpx

    # In process, without the lifespan: no broker or store is needed to list the Open311 services.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake")


def _channel_of_work_order(app, channel_code: str) -> str:
    from civicbus.events import WorkOrderSubmission

    order = {"gdbh": "GD20261125001", "sqnr": "小区门口路灯不亮", "lyqd": channel_code}
    return app.state.admission.work_order(WorkOrderSubmission(platform="hotline12345", order=order)).channel


async def test_intake_picks_up_a_changed_mapping_and_catalogue_and_keeps_both_when_a_file_breaks(tmp_path):
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE, folder)
    app = _intake(folder)
    mapping, catalogue = folder / "upstream" / "hotline12345.yaml", folder / "open311.yaml"
    assert _channel_of_work_order(app, "06") == "06", "an unmapped channel is kept as the platform wrote it"
    watch = asyncio.create_task(watch_district(app.state.runtime, interval=0.02))
    await asyncio.sleep(0.05)  # the watch has taken the files' stamp
    try:
        _edit_yaml(mapping, lambda data: data["value_maps"]["channel"]["values"].update({"06": "12345小程序"}))
        _edit_yaml(catalogue, lambda data: data.update(hidden=["petition"]))  # police's services offered too
        await _until(lambda: "police.dispute" in app.state.open311.services
                     and _channel_of_work_order(app, "06") == "12345小程序")
        async with _intake_client(app) as client:
            listed = (await client.get("/open311/v2/services.json")).json()
        assert "police.dispute" in {service["service_code"] for service in listed}

        mappings_before, catalogue_before = app.state.admission.mappings, app.state.open311
        with capture_logs() as logs:
            # A value map's key YAML reads as a number: the mapping no longer validates.
            mapping.write_text(mapping.read_text(encoding="utf-8").replace("'06': 12345小程序", "6: 12345小程序"),
                               encoding="utf-8")
            await _until(lambda: any(entry["log_level"] == "error" for entry in logs))
            # The catalogue broken, then the mapping mended: the pair is loaded together, and neither is swapped.
            catalogue.write_text(catalogue.read_text(encoding="utf-8").replace("- petition", "- nowhere"),
                                 encoding="utf-8")
            mapping.write_text(mapping.read_text(encoding="utf-8").replace("6: 12345小程序", "'06': 小程序"),
                               encoding="utf-8")
            await _until(lambda: any("open311.yaml" in entry.get("error", "") for entry in logs))
        errors = [entry for entry in logs if entry["log_level"] == "error"]
        assert all("继续使用原配置" in entry["event"] for entry in errors)
        assert "hotline12345.yaml" in errors[0]["error"] and "quoted" in errors[0]["error"]
        assert "'nowhere' is not a category" in errors[-1]["error"]
        assert app.state.admission.mappings is mappings_before and app.state.open311 is catalogue_before
        assert _channel_of_work_order(app, "06") == "12345小程序"
    finally:
        watch.cancel()


async def test_intake_turns_open311_off_when_its_file_is_removed_and_on_when_it_returns(tmp_path):
    configure_logging("INFO")  # the info lines read below, whatever an earlier test set the level to
    folder = tmp_path / "district"
    shutil.copytree(SAMPLE, folder)
    app = _intake(folder)
    catalogue = folder / "open311.yaml"
    kept = catalogue.read_text(encoding="utf-8")
    watch = asyncio.create_task(watch_district(app.state.runtime, interval=0.02))
    await asyncio.sleep(0.05)
    try:
        async with _intake_client(app) as client:
            assert (await client.get("/open311/v2/services.json")).status_code == 200
            with capture_logs() as logs:
                catalogue.unlink()
                await _until(lambda: app.state.open311 is None)
            assert [entry["event"] for entry in logs if "Open311" in entry["event"]] == [
                "Open311 已关闭 (Open311 turned off)"]
            for path in ("services.json", "discovery.xml", "requests.json", "no/such/thing.json"):
                off = await client.get(f"/open311/v2/{path}")
                assert off.status_code == 404, path
            assert off.json() == [{"code": 404, "description": "本街道未开通 Open311 (Open311 is not offered here)"}]

            catalogue.write_text(kept, encoding="utf-8")
            await _until(lambda: app.state.open311 is not None)
            listed = await client.get("/open311/v2/services.json")
            assert listed.status_code == 200 and "labor.wage_arrears" in {
                service["service_code"] for service in listed.json()}
    finally:
        watch.cancel()
