"""The deployment files, checked by the tools that will read them: the Prometheus rules and configurations by
promtool (``check rules``, ``test rules`` on synthetic series, ``check config``), the Kubernetes manifests rendered
by Kustomize and validated by kubeconform against the Kubernetes JSON schemas, docker-compose.yml by compose-go.

``scripts/test.sh`` installs the tools (``scripts/deploy-tools.sh``). Where one is missing a test skips naming it;
under CI (``CI`` set) a missing tool is a failure, so a green CI run has run them all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import civicbus.metrics  # noqa: F401  (registers every civicbus metric)
from civicbus.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules"
RULE_TESTS = DEPLOY / "prometheus" / "tests"
KUBERNETES = DEPLOY / "kubernetes"
OVERLAY = KUBERNETES / "overlays" / "sample"
RUNBOOK = PROJECT_ROOT / "docs" / "runbook.md"
HOME = Path(os.environ.get("CIVICBUS_HOME", PROJECT_ROOT / ".civicbus")).resolve()
SCHEMAS = HOME / "k8s-schemas"
SERVICES = ("intake", "triage", "notify", "reporting")
# Partitions of the topics each service consumes (civicbus/topics.py): replicas beyond the largest idle.
MAX_USEFUL_REPLICAS = {"intake": 6, "triage": 6, "notify": 6, "reporting": 6}
CJK = re.compile(r"[\u4e00-\u9fff]")


def tool(name: str, installed_by: str) -> str:
    """The path of a tool, from .civicbus/bin or PATH; skip (fail under CI) where it is missing."""
    local = HOME / "bin" / name
    found = str(local) if local.is_file() and os.access(local, os.X_OK) else shutil.which(name)
    if found:
        return found
    reason = f"{name} is not installed ({installed_by}; scripts/test.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def promtool() -> str:
    return tool("promtool", "Debian's prometheus package, apt-get as root")


def run(command: list[str], cwd: Path = PROJECT_ROOT, stdin: str | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def rule_groups() -> list[dict[str, Any]]:
    return [group for path in sorted(RULES.glob("*.yml")) for group in yaml.safe_load(path.read_text())["groups"]]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in rule_groups() for rule in group["rules"] if "alert" in rule}


def civicbus_metrics() -> list[Any]:
    """Every metric declared in civicbus/metrics.py (the one place metrics are declared)."""
    from prometheus_client.metrics import MetricWrapperBase

    declared = [value.metric if isinstance(value, civicbus.metrics.OwnMetric) else value
                for value in vars(civicbus.metrics).values()]
    return [metric for metric in declared if isinstance(metric, MetricWrapperBase)]


def metric_names() -> set[str]:
    """Every series name the civicbus metrics expose (counters with _total, histograms with _bucket …)."""
    names = {metric._name for metric in civicbus_metrics()}  # noqa: SLF001
    return names | {f"{name}{suffix}" for name in names for suffix in ("_total", "_bucket", "_sum", "_count")}


# --------------------------------------------------------------------------- metrics


def test_every_civicbus_metric_has_a_service_label() -> None:
    metrics = civicbus_metrics()
    assert len(metrics) >= 15
    unlabelled = [metric._name for metric in metrics if "service" not in metric._labelnames]  # noqa: SLF001
    assert not unlabelled, f"civicbus metrics without a service label: {unlabelled}"


def test_service_bound_metrics_fill_in_their_service() -> None:
    civicbus.metrics.TICKETS_ROUTED.labels("manual").inc()
    assert REGISTRY.get_sample_value("civicbus_tickets_routed_total",
                                     {"service": "triage", "outcome": "manual"}) >= 1


def test_the_calendar_gauge_says_which_years_have_holidays() -> None:
    from civicbus.district import load_district
    from civicbus.settings import DEFAULT_CONFIG_DIR
    from civicbus.workcalendar import WorkingCalendar

    district = load_district(DEFAULT_CONFIG_DIR)
    calendar = WorkingCalendar(district.deadlines, district.timezone)
    assert calendar.holidays_known(2026)  # packaged by chinese-calendar
    assert not calendar.holidays_known(2030)
    festivals = [day for day, _ in calendar.missing_festivals(2030)]
    with_extra = WorkingCalendar(district.deadlines.model_copy(update={"holidays": festivals}), district.timezone)
    assert with_extra.holidays_known(2030)  # listed by the district while the package has not caught up


def expressions() -> list[str]:
    found = [rule["expr"] for group in rule_groups() for rule in group["rules"]]
    dashboards = [yaml.safe_load(path.read_text()) for path in (DEPLOY / "grafana" / "dashboards").glob("*.json")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                found.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboards)
    return found


def test_rules_and_dashboards_use_only_metrics_that_exist() -> None:
    known = metric_names()
    used = {name for expr in expressions() for name in re.findall(r"\b(civicbus_[a-z_]+)\b", expr)}
    assert used, "no civicbus metric found in the rules and dashboards"
    assert not used - known, f"unknown metrics in rules or dashboards: {sorted(used - known)}"


def test_the_dashboard_shows_lag_dead_letters_halted_consumers_retries_and_alerts() -> None:
    text = " ".join(expressions())
    for needed in ("civicbus_consumer_lag", 'outcome="dead_lettered"', "civicbus_consumer_halted",
                   "civicbus_batch_retries_total", "ALERTS", "civicbus_notify_timers_done_timestamp_seconds",
                   "civicbus_tickets_overdue_total", "civicbus_calendar_holidays_known", "civicbus_dependency_up"):
        assert needed in text, needed


# --------------------------------------------------------------------------- Prometheus rules


def test_every_alert_has_both_languages_a_severity_and_a_runbook_section() -> None:
    anchors = {re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
               for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    assert len(alerts()) >= 15
    for name, rule in alerts().items():
        notes = rule["annotations"]
        assert set(notes) >= {"summary", "summary_zh", "description", "description_zh", "runbook_url"}, name
        assert CJK.search(notes["summary_zh"]) and CJK.search(notes["description_zh"]), name
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert notes["runbook_url"] == f"docs/runbook.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbook.md has no section '## {name}'"


def test_every_alert_has_a_unit_test_that_fires_and_one_that_does_not() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS.glob("*.yml"):
        for case in (case for test in yaml.safe_load(path.read_text())["tests"] for case in test["alert_rule_test"]):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert set(alerts()) <= fired, f"no firing case for {sorted(set(alerts()) - fired)}"
    assert set(alerts()) <= quiet, f"no quiet case for {sorted(set(alerts()) - quiet)}"


def test_promtool_checks_the_rules() -> None:
    output = run([promtool(), "check", "rules", *map(str, sorted(RULES.glob("*.yml")))])
    assert "SUCCESS" in output


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    output = run([promtool(), "test", "rules", *(path.name for path in sorted(RULE_TESTS.glob("*.yml")))],
                 cwd=RULE_TESTS)
    assert "FAILED" not in output


def test_promtool_checks_the_compose_prometheus_configuration_with_its_rules() -> None:
    output = run([promtool(), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")])
    assert "rule files found" in output and "SUCCESS" in output


def test_promtool_checks_the_kubernetes_prometheus_configuration(tmp_path: Path) -> None:
    """Debian's promtool is built without Kubernetes service discovery: where it does not know
    ``kubernetes_sd_configs``, the rest of the file (relabelling, rule files) is checked with the discovery
    replaced by a static target."""
    shutil.copytree(RULES, tmp_path / "rules")
    text = (KUBERNETES / "prometheus-scrape.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(text)
    result = subprocess.run([promtool(), "check", "config", "prometheus.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    if result.returncode and "kubernetes_sd_configs not found" in result.stdout + result.stderr:
        config = yaml.safe_load(text)
        for job in config["scrape_configs"]:
            del job["kubernetes_sd_configs"]
            job["static_configs"] = [{"targets": ["10.0.0.1:8081"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        result = subprocess.run([promtool(), "check", "config", "prometheus.yml"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule files found" in result.stdout


# --------------------------------------------------------------------------- Kubernetes


@pytest.fixture(scope="module")
def rendered() -> str:
    kubectl = HOME / "bin" / "kubectl" if (HOME / "bin" / "kubectl").is_file() else shutil.which("kubectl")
    if kubectl:
        return run([str(kubectl), "kustomize", str(OVERLAY)])
    return run([tool("kustomize", "sigs.k8s.io/kustomize from the Go module proxy, or kubectl"), "build",
                str(OVERLAY)])


@pytest.fixture(scope="module")
def resources(rendered: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(rendered) if document]


def of_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {resource["metadata"]["name"]: resource for resource in resources if resource["kind"] == kind}


def test_each_service_is_a_deployment_with_probes_resources_and_scrape_annotations(resources: list) -> None:
    deployments = of_kind(resources, "Deployment")
    assert set(deployments) == {f"civicbus-{service}" for service in SERVICES}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        port = container["ports"][0]["containerPort"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"], name
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true", name
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port), name
        assert container["args"] == ["run", name.removeprefix("civicbus-")]
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        assert "MONGO_URL" not in env and "KAFKA_BOOTSTRAP_SERVERS" not in env, "connection strings are secrets"
        sources = {next(iter(source)): source[next(iter(source))]["name"] for source in container["envFrom"]}
        assert sources["secretRef"].startswith("civicbus-secrets-")
        volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
        assert volumes["district"]["configMap"]["name"].startswith("civicbus-district-")


def test_every_consumer_runs_at_least_two_replicas_and_never_more_than_its_partitions(resources: list) -> None:
    deployments = of_kind(resources, "Deployment")
    autoscalers = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in of_kind(resources,
                                                                               "HorizontalPodAutoscaler").values()}
    assert set(autoscalers) == {"civicbus-triage", "civicbus-notify"}
    for service in SERVICES:
        name = f"civicbus-{service}"
        if name in autoscalers:
            spec = autoscalers[name]["spec"]
            assert spec["minReplicas"] >= 2 and spec["maxReplicas"] <= MAX_USEFUL_REPLICAS[service], name
            assert "replicas" not in deployments[name]["spec"], "the autoscaler owns the replicas"
        else:
            assert 2 <= deployments[name]["spec"]["replicas"] <= MAX_USEFUL_REPLICAS[service], name


def test_every_service_has_a_disruption_budget_matching_its_pods(resources: list) -> None:
    budgets = of_kind(resources, "PodDisruptionBudget")
    for service in SERVICES:
        budget = budgets[f"civicbus-{service}"]
        pods = of_kind(resources, "Deployment")[f"civicbus-{service}"]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= pods.items()


def test_the_district_folder_is_a_configmap_and_the_topics_job_creates_the_topics(resources: list) -> None:
    maps = of_kind(resources, "ConfigMap")
    district = next(value for name, value in maps.items() if re.fullmatch(r"civicbus-district-[a-z0-9]+", name))
    sample = PROJECT_ROOT / "config" / "sample"
    assert set(district["data"]) == {path.name for path in sample.glob("*") if path.is_file()} - {"kustomization.yaml"}
    upstream = next(value for name, value in maps.items() if name.startswith("civicbus-district-upstream-"))
    assert set(upstream["data"]) == {path.name for path in (sample / "upstream").glob("*.yaml")}
    job = of_kind(resources, "Job")["civicbus-topics"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["topics", "create"]


def kubeconform(rendered: str, version: str) -> subprocess.CompletedProcess[str]:
    folder = SCHEMAS / f"v{version}-local-strict"
    if not (folder / ".complete").is_file():
        reason = f"no Kubernetes {version} schemas in {SCHEMAS} (scripts/deploy-tools.sh extracts them from PyPI)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    location = f"{SCHEMAS}/{{{{ .NormalizedKubernetesVersion }}}}-local{{{{ .StrictSuffix }}}}/" \
               "{{ .ResourceKind }}{{ .KindSuffix }}.json"
    return subprocess.run(
        [tool("kubeconform", "github.com/yannh/kubeconform from the Go module proxy"), "-strict", "-summary",
         "-kubernetes-version", version, "-schema-location", location, "-"],
        input=rendered, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_kubeconform_validates_every_rendered_resource(rendered: str, version: str) -> None:
    result = kubeconform(rendered, version)
    assert result.returncode == 0, result.stdout + result.stderr
    count = len([document for document in yaml.safe_load_all(rendered) if document])
    assert f"Valid: {count}, Invalid: 0, Errors: 0, Skipped: 0" in result.stdout, result.stdout


@pytest.mark.parametrize("mistake", [
    lambda text: text.replace("readinessProbe:", "readinesProbe:", 1),  # an unknown field (strict schemas)
    lambda text: text.replace("maxReplicas: 6", "maxReplicas: six", 1),  # a wrong type
])
def test_kubeconform_rejects_a_broken_manifest(rendered: str, mistake: Callable[[str], str]) -> None:
    """The schemas are really in force: a typo or a wrong type is caught, not skipped."""
    broken = mistake(rendered)
    assert broken != rendered
    assert kubeconform(broken, "1.37.0").returncode != 0


# --------------------------------------------------------------------------- docker compose


def test_compose_go_loads_the_compose_file() -> None:
    output = run([tool("composecheck", "deploy/tools/composecheck, built with Go"), "docker-compose.yml"])
    assert set(output.split()) >= {*SERVICES, "kafka", "mongo", "topics", "prometheus", "grafana"}


def test_compose_prometheus_mounts_the_rules_it_loads() -> None:
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in volumes
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules/*.yml"]
