"""Dead letters (死信) for operators: read ``civic.dlq``, look at one letter, and replay letters once the cause is
fixed (``civicbus dlq list|show|replay``).

The topic is read from the beginning to its current end without a consumer group — looking never moves anyone's
offsets and two operators never share partitions. A replay publishes the original record's value to its original
topic with its original key and headers, plus ``dlq-replay-of`` naming the letter; the consumers deduplicate by
event id as for any redelivery. Each replay is claimed in MongoDB (``dlq_replays``, ``_id`` = ``<partition>:<offset>``)
before it is published, so a letter is replayed once however often the command runs; a claim whose publication
failed is withdrawn, so the letter can be replayed again.

A letter keeps the original record whole (the operator needs it to replay), personal data included: everything
shown here is masked with :func:`civicbus.privacy.mask_personal_data`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from civicbus.events import DeadLetter
from civicbus.privacy import mask_personal_data
from civicbus.topics import DEAD_LETTERS

REPLAYS_COLLECTION = "dlq_replays"
REPLAY_HEADER = "dlq-replay-of"


@dataclass(frozen=True)
class Letter:
    """One dead letter and its place on the DLQ topic."""

    partition: int
    offset: int
    dead: DeadLetter

    @property
    def place(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def original_place(self) -> str:
        return f"{self.dead.original_topic}:{self.dead.original_partition}:{self.dead.original_offset}"

    def original_bytes(self) -> bytes:
        if self.dead.value_encoding == "base64":
            return base64.b64decode(self.dead.original_value)
        return self.dead.original_value.encode()

    def shown_value(self) -> str:
        """The original value for people: pretty JSON if it is JSON, base64 as it is if it is not text; masked."""
        if self.dead.value_encoding == "base64":
            return f"(base64) {self.dead.original_value}"
        try:
            text = orjson.dumps(orjson.loads(self.dead.original_value), option=orjson.OPT_INDENT_2).decode()
        except orjson.JSONDecodeError:
            text = self.dead.original_value
        return mask_personal_data(text)


@dataclass(frozen=True)
class LetterFilter:
    service: str = ""
    error_kind: str = ""
    since: datetime | None = None  # when it was dead-lettered, inclusive
    until: datetime | None = None  # exclusive

    def admits(self, dead: DeadLetter) -> bool:
        return (
            (not self.service or dead.service == self.service)
            and (not self.error_kind or dead.error_kind == self.error_kind)
            and (self.since is None or dead.recorded_at >= self.since)
            and (self.until is None or dead.recorded_at < self.until)
        )


def parse_place(text: str) -> tuple[int, int]:
    """``PARTITION:OFFSET`` → the pair, or ValueError saying what is expected."""
    partition, _, offset = text.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        raise ValueError(f"{text!r}: 应为 分区:偏移量，例如 0:42 (expected PARTITION:OFFSET, e.g. 0:42)")
    return int(partition), int(offset)


@dataclass
class Reading:
    letters: list[Letter]
    unreadable: list[str]  # places of records on the topic that are no dead letter


async def read_letters(
    bootstrap: str, prefix: str, letter_filter: LetterFilter = LetterFilter(), place: tuple[int, int] | None = None
) -> Reading:
    """The dead letters on the topic now, oldest first per partition — all that ``letter_filter`` admits, or only the
    one at ``place``."""
    topic = DEAD_LETTERS.full_name(prefix)
    partitions = await _partitions(bootstrap, topic)
    if place is not None:
        partitions = [partition for partition in partitions if partition == place[0]]
    if not partitions:
        return Reading([], [])
    assigned = [TopicPartition(topic, partition) for partition in partitions]
    # Partitions without a position start at their beginning (the default, latest, would race with the seeks).
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="civicbus-dlq")
    await consumer.start()
    try:
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        next_offsets = await consumer.beginning_offsets(assigned)
        if place is not None:
            next_offsets = {partition: place[1] for partition in assigned}
            ends = {partition: min(end, place[1] + 1) for partition, end in ends.items()}
        for partition, start in next_offsets.items():
            consumer.seek(partition, start)
        reading = Reading([], [])
        remaining = await _unfinished(consumer, assigned, ends)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for partition, records in batch.items():
                for record in records:
                    # Each record once, even if a late reset of the position reads some again; letters written
                    # while reading wait for the next run.
                    if next_offsets[partition] <= record.offset < ends[partition]:
                        next_offsets[partition] = record.offset + 1
                        _collect(reading, record, letter_filter)
            remaining = await _unfinished(consumer, remaining, ends)
        return reading
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="civicbus-dlq")
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if description["error_code"] or not description["partitions"]:
        raise LookupError(f"主题 {topic} 不存在 (no such topic; is the topic prefix right?)")
    return sorted(partition["partition"] for partition in description["partitions"])


async def _unfinished(
    consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition], ends: dict[TopicPartition, int]
) -> list[TopicPartition]:
    return [partition for partition in partitions if await consumer.position(partition) < ends[partition]]


def _collect(reading: Reading, record: ConsumerRecord, letter_filter: LetterFilter) -> None:
    try:
        dead = DeadLetter.model_validate_json(record.value or b"")
    except ValidationError:
        reading.unreadable.append(f"{record.partition}:{record.offset}")
        return
    if letter_filter.admits(dead):
        reading.letters.append(Letter(record.partition, record.offset, dead))


@dataclass(frozen=True)
class Replayed:
    letter: Letter
    outcome: str  # replayed, skipped or failed
    detail: str = ""


async def replay(bootstrap: str, prefix: str, db: AsyncDatabase, letters: Sequence[Letter]) -> list[Replayed]:
    """Publish each letter's original record again, once: a letter replayed before is skipped and reported."""
    claims = db[REPLAYS_COLLECTION]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                client_id="civicbus-dlq")
    await producer.start()
    results = []
    try:
        for letter in letters:
            dead = letter.dead
            claim = {"_id": letter.place, "status": "claimed", "claimed_at": datetime.now(UTC),
                     "dlq_topic": DEAD_LETTERS.full_name(prefix), "original_topic": dead.original_topic,
                     "original_partition": dead.original_partition, "original_offset": dead.original_offset}
            try:
                await claims.insert_one(claim)
            except DuplicateKeyError:
                earlier = await claims.find_one({"_id": letter.place}) or {}
                results.append(Replayed(letter, "skipped", _earlier(earlier)))
                continue
            headers = [(name, value.encode()) for name, value in dead.original_headers.items() if name != REPLAY_HEADER]
            headers.append((REPLAY_HEADER, f"{DEAD_LETTERS.full_name(prefix)}:{letter.place}".encode()))
            try:
                sent = await producer.send_and_wait(
                    dead.original_topic, letter.original_bytes(),
                    key=dead.original_key.encode() if dead.original_key is not None else None, headers=headers)
            except Exception as error:
                await claims.delete_one({"_id": letter.place})  # not published: it may be replayed again
                results.append(Replayed(letter, "failed", str(error)))
                continue
            await claims.update_one({"_id": letter.place}, {"$set": {
                "status": "replayed", "replayed_at": datetime.now(UTC), "partition": sent.partition,
                "offset": sent.offset}})
            results.append(Replayed(letter, "replayed", f"{dead.original_topic}:{sent.partition}:{sent.offset}"))
    finally:
        await producer.stop()
    return results


def _earlier(claim: dict) -> str:
    if claim.get("status") == "replayed":
        return f"已于 {claim['replayed_at']:%Y-%m-%d %H:%M:%S} UTC 重放 (replayed before)"
    # Claimed, then the process ended before Kafka acknowledged: look at the original topic before deleting the claim.
    return "已认领但未确认发布，请人工核实 (claimed but never confirmed as published; check before clearing the claim)"
