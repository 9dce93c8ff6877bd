"""`civicbus config check` runs every service's loader over the folder: a file only one service reads (routing.yaml,
notify.yaml, a channel in district.yaml) is refused there as the service would refuse it, naming file, entry and
problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import app

from .test_district_config import SAMPLE, broken, edit_yaml  # noqa: F401 - fixture


@pytest.fixture(autouse=True)
def _no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    # In process, the CLI's logging set-up would point every later test's logs at this runner's closed stream.
    monkeypatch.setattr("civicbus.logs.configure_logging", lambda *args, **kwargs: None)


def check(folder: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["config", "check", str(folder)], env={"COLUMNS": "1000"})  # one line each
    return result.exit_code, result.output


def test_the_sample_passes_with_every_services_files_summarised():
    code, output = check(SAMPLE)
    assert code == 0, output
    assert "✓ 示范街道" in output and "✓ intake:" in output
    assert "✓ triage:" in output and "routing branches" in output and "escalation policies" in output


def test_a_broken_routing_file_is_reported_with_its_route(broken: Path):  # noqa: F811
    edit_yaml(broken / "routing.yaml", lambda data: data["route"]["routes"][2].update(lead="nosuchunit"))
    code, output = check(broken)
    assert code == 1
    assert "routing.yaml: route.routes[2] (安全生产): unit 'nosuchunit' is not declared in district.yaml" in output


def test_a_broken_notify_file_is_reported_with_its_entry(broken: Path):  # noqa: F811
    edit_yaml(broken / "notify.yaml", lambda data: data["quiet_hours"].update(end="22:00"))
    code, output = check(broken)
    assert code == 1 and "notify.yaml: quiet_hours:" in output and "must not start when they end" in output


def test_a_channel_notify_cannot_send_through_is_reported_with_its_entry(broken: Path):  # noqa: F811
    edit_yaml(broken / "district.yaml", lambda data: data["units"][2].update(channels=[{"type": "pager"}]))
    code, output = check(broken)
    assert code == 1 and "district.yaml: units[2]" in output and ".channels[0]:" in output and "'pager'" in output
