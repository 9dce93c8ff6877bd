"""Each service's AsyncAPI document says what it consumes and what it publishes, per the topic registry, with every
message's full schema and an example; the AsyncAPI initiative's parser accepts the documents and every example
matches its schema (web/asyncapi-check.mjs)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from civicbus.asyncapi import service_document
from ops.services import SERVICES
from civicbus.settings import PROJECT_ROOT
from civicbus.topics import ALL_TOPICS

CHECK = PROJECT_ROOT / "web" / "asyncapi-check.mjs"


def _operations(service: str) -> set[tuple[str, str]]:
    document = service_document(service, "1.0.0")
    return {(operation["action"], operation["channel"]["$ref"].rsplit("/", 1)[-1])
            for operation in document["operations"].values()}


def test_every_service_lists_what_it_publishes_as_well_as_what_it_consumes():
    assert _operations("triage") == {
        ("receive", "civic_events"), ("receive", "civic_commands"), ("send", "civic_commands"),
        ("send", "civic_tickets"), ("send", "civic_command-results"), ("send", "civic_dlq")}
    assert ("send", "civic_notifications") in _operations("notify")
    assert ("send", "civic_events") in _operations("intake") and ("receive", "civic_intake") in _operations("intake")
    assert ("receive", "civic_command-results") in _operations("intake"), "intake answers commands from Kafka"
    for topic in ALL_TOPICS:  # every registered service end of every topic is in that service's document
        channel = topic.name.replace(".", "_")
        for service in SERVICES:
            if any(party.split(" ", 1)[0] == service for party in topic.producers):
                assert ("send", channel) in _operations(service), (service, topic.name)
            if any(party.split(" ", 1)[0] == service for party in topic.consumers):
                assert ("receive", channel) in _operations(service), (service, topic.name)


def test_every_message_has_its_full_schema_and_an_example():
    document = service_document("triage", "1.0.0", prefix="staging.")
    assert document["channels"]["civic_events"]["address"] == "staging.civic.events"
    alarm = document["components"]["messages"]["civic_events_AlarmRaised"]
    assert alarm["payload"]["properties"]["data"]["properties"]["device_id"]["type"] == "string"
    assert "$ref" not in json.dumps(alarm["payload"]), "self-contained: another team needs nothing else"
    assert alarm["examples"][0]["payload"]["data"]["device_id"] == "SMK-0031"
    triaged = document["components"]["messages"]["civic_commands_EventTriaged"]
    assert "oneOf" in json.dumps(triaged["payload"]), "the incoming event is one of the three kinds"


@pytest.mark.skipif(shutil.which("node") is None or not (PROJECT_ROOT / "web" / "node_modules" / "@asyncapi").is_dir(),
                    reason="needs Node.js and `npm ci --prefix web` (scripts/setup.sh does both)")
def test_the_asyncapi_parser_accepts_every_document_and_every_example_matches(tmp_path: Path):
    paths = []
    for service in SERVICES:
        path = tmp_path / f"{service}.json"
        path.write_text(json.dumps(service_document(service, "1.0.0"), ensure_ascii=False), encoding="utf-8")
        paths.append(str(path))
    result = subprocess.run(["node", str(CHECK), *paths], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr

    broken = json.loads(Path(paths[1]).read_text(encoding="utf-8"))
    broken["components"]["messages"]["civic_events_AlarmRaised"]["examples"][0]["payload"]["data"]["severity"] = 5
    Path(paths[1]).write_text(json.dumps(broken), encoding="utf-8")
    result = subprocess.run(["node", str(CHECK), paths[1]], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "AlarmRaised" in result.stdout, "a wrong example is caught"
