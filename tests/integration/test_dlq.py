"""``civicbus dlq list|show|replay`` against the real broker and store: dead letters are found by their filters and
shown masked, and a replay puts the original record back on its topic with its key and headers — once, however
often it is asked for."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import MongoClient
from typer.testing import CliRunner

from civicbus.dlq import REPLAY_HEADER
from civicbus.kafka import create_topics, dead_letter_for
from ops.cli import app

from .conftest import read_topic

pytestmark = pytest.mark.integration

PHONE = "13800001234"
BINARY = b"\xff\xfe not text"


async def _dead_letter_two_records(stack, prefix: str) -> None:
    """Put two records on civic.intake, as an upstream system would, and dead-letter them as the consumers do."""
    await create_topics(stack.bootstrap, prefix)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        invalid = orjson.dumps({"type": "complaint", "content": f"来电 {PHONE} 反映", "labels": {"a.b": "1"}})
        await producer.send_and_wait(f"{prefix}civic.intake", invalid, key=b"wangge-7",
                                     headers=[("source-system", b"wangge"), ("caller", PHONE.encode())])
        await producer.send_and_wait(f"{prefix}civic.intake", BINARY, key=None)
        records = await read_topic(_Prefixed(stack, prefix), "civic.intake")
        [keyed] = [record for record in records if record.key]
        [binary] = [record for record in records if record.value == BINARY]
        letters = [dead_letter_for(keyed, "intake", "invalid", f"labels: 键 'a.b' 不可用 (caller {PHONE})"),
                   dead_letter_for(binary, "triage", "processing", "store refused the document")]
        for letter in letters:
            await producer.send_and_wait(f"{prefix}civic.dlq", letter.encode(), key=letter.partition_key.encode())
    finally:
        await producer.stop()


class _Prefixed:
    """The stack seen with another topic prefix (read_topic reads ``stack.prefix + topic``)."""

    def __init__(self, stack, prefix: str) -> None:
        self.bootstrap, self.prefix = stack.bootstrap, prefix


def _place_of(listed: str, service: str) -> str:
    """The PARTITION:OFFSET of the letter of ``service`` in the table ``dlq list`` printed."""
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in listed.splitlines() if "│" in line]
    [place] = [row[0] for row in rows if len(row) > 2 and row[2] == service]
    return place


def test_dead_letters_are_listed_shown_and_replayed_once(stack, monkeypatch):
    # The CLI's logging set-up would send the in-process services' logs to the runner's output, closed after each run.
    monkeypatch.setattr("civicbus.logs.configure_logging", lambda *args, **kwargs: None)
    prefix = f"{stack.prefix}dlq{uuid.uuid4().hex[:6]}."  # topics of its own: no service consumes the replays
    db_name = f"civicbus_test_dlq_{uuid.uuid4().hex[:8]}"
    asyncio.run(_dead_letter_two_records(stack, prefix))
    env = {"KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "MONGO_URL": stack.mongo_url, "CIVICBUS_MONGO_DB": db_name,
           "CIVICBUS_TOPIC_PREFIX": prefix}
    runner = CliRunner()

    def civicbus(*args: str) -> str:
        result = runner.invoke(app, ["dlq", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output

    listed = civicbus("list")
    assert "2 条死信" in listed and "intake" in listed and "triage" in listed
    assert PHONE not in listed and "138****1234" in listed, "reasons are masked"
    intake_only = civicbus("list", "--service", "intake")
    assert "1 条死信" in intake_only and "triage" not in intake_only
    assert "1 条死信" in civicbus("list", "--error-kind", "processing")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert "0 条死信" in civicbus("list", "--since", tomorrow)
    assert "2 条死信" in civicbus("list", "--until", tomorrow)

    place = _place_of(intake_only, "intake")
    shown = civicbus("show", place)
    assert f"{prefix}civic.intake:" in shown and "wangge-7" in shown and "source-system: wangge" in shown
    assert '"a.b": "1"' in shown, "the original value, in full"
    assert PHONE not in shown and "138****1234" in shown, "value, headers and reason are masked"

    first = civicbus("replay", place, "--yes")
    assert "replayed" in first and "skipped" not in first
    again = civicbus("replay", place, "--yes")
    assert "skipped" in again and "重放" in again, "the second replay of a letter is skipped, saying when it was made"
    binary_place = _place_of(listed, "triage")
    assert f"(base64) {base64.b64encode(BINARY).decode()}" in civicbus("show", binary_place)
    assert "replayed" in civicbus("replay", "--service", "triage", "--yes")

    records = asyncio.run(read_topic(_Prefixed(stack, prefix), "civic.intake"))
    assert len(records) == 4, "each letter's record once more; the second replay of the first was skipped"
    original, replayed = sorted((record for record in records if record.key == b"wangge-7"),
                                key=lambda record: REPLAY_HEADER in dict(record.headers))
    assert replayed.value == original.value and replayed.partition == original.partition
    headers = dict(replayed.headers)
    assert headers["source-system"] == b"wangge" and headers["caller"] == PHONE.encode(), "its headers travel along"
    assert headers[REPLAY_HEADER] == f"{prefix}civic.dlq:{place}".encode()
    assert [record.key for record in records if record.value == BINARY] == [None, None], "base64 replays its bytes"

    with MongoClient(stack.mongo_url) as client:
        try:
            claims = {claim["_id"]: claim for claim in client[db_name]["dlq_replays"].find()}
        finally:
            client.drop_database(db_name)
    assert set(claims) == {place, binary_place}
    assert all(claim["status"] == "replayed" for claim in claims.values())
