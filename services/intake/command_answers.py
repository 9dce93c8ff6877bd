"""What became of each command (``command_answers``), as intake answers it: to the request that waits for its
command, and to ``GET /v1/commands/{id}``.

Triage announces each command's decision on ``civic.command-results`` (``CommandDecided``, keyed by ticket id) once
the ticket is written and the transition announced; intake's consumer of that topic keeps it here by command id.
Services talk only through Kafka, so intake keeps this copy instead of reading triage's decision records. One writer
per document: the consumer that owns the partition of the command's ticket; a decision never changes, so a
redelivered one changes nothing. A waiting request reads the document by ``_id``, whichever replica wrote it.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from civicbus.events import CommandDecided
from civicbus.kafka import BatchOutcome, Consumed
from civicbus.mongo import insert_missing
from civicbus.service import Runtime
from civicbus.topics import COMMAND_DECISIONS

COLLECTION = "command_answers"


class CommandAnswers:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[COLLECTION]

    async def record(self, batch: list[Consumed]) -> BatchOutcome:
        decisions: dict[str, dict[str, Any]] = {}
        for item in batch:
            decided: CommandDecided = item.event
            decisions[decided.command_id] = decided.model_dump(
                include={"ticket_id", "status", "transition", "state", "code", "message", "message_en"}
            ) | {"decided_at": decided.occurred_at}
        created = await insert_missing(self.collection, decisions)
        return BatchOutcome(duplicates=len(batch) - len(created))

    async def find(self, command_id: str) -> dict[str, Any] | None:
        return await self.collection.find_one({"_id": command_id})


def subscribe_command_answers(runtime: Runtime) -> CommandAnswers:
    answers = CommandAnswers(runtime.db)
    runtime.subscribe(COMMAND_DECISIONS, answers.record)
    return answers
