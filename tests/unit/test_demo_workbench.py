"""The demo's workbench (ops/demo.py): one account per role, each valid in the sample district and printed with its
password and unit, and the workbench's intake key given to reporting alone."""

from __future__ import annotations

from rich.console import Console

from civicbus.district import load_district
from civicbus.settings import DEFAULT_CONFIG_DIR
from ops.demo import DEMO_ACCOUNTS, _accounts_table, _environment, demo_password
from ops.webhook_receiver import WebhookSink
from services.reporting.workbench.accounts import PersonRole, checked_account

DISTRICT = load_district(DEFAULT_CONFIG_DIR)


def test_one_demo_account_per_role_each_valid_in_the_sample_district() -> None:
    roles = [checked_account(DISTRICT, username, name, role, **where).role
             for username, name, role, where in DEMO_ACCOUNTS]
    assert sorted(roles) == sorted(PersonRole)


def test_the_demo_prints_each_account_with_its_password_and_unit() -> None:
    console = Console(record=True, width=200)
    console.print(_accounts_table(DISTRICT))
    rows = {line.split("│")[2].strip(): line for line in console.export_text().splitlines() if line.count("│") > 4}
    assert set(rows) == {username for username, *_ in DEMO_ACCOUNTS}
    for username, _, role, _ in DEMO_ACCOUNTS:
        assert demo_password(role) in rows[username]
    assert "劳动保障所" in rows["zhangsan"] and "平安办（综治中心）" in rows["xuli"]
    assert "分管社会事务、劳动保障" in rows["zhengxiuying"] and "管理员" in rows["admin"]


def test_only_reporting_gets_the_workbench_key_and_intakes_address() -> None:
    sink = WebhookSink(port=18080)
    reporting = _environment(sink, "reporting", "cbk_workbench")
    assert reporting["CIVICBUS_WORKBENCH_KEY"] == "cbk_workbench"
    assert reporting["CIVICBUS_INTAKE_URL"] == "http://127.0.0.1:8081"
    for service in ("intake", "triage", "notify"):
        assert "CIVICBUS_WORKBENCH_KEY" not in _environment(sink, service, "cbk_workbench")
