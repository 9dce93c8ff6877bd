"""MongoDB access for every service (PyMongo's native async API), and idempotent counters.

The same code serves a real MongoDB and the embedded FerretDB v1. FerretDB v1 has no transactions, no TTL
indexes and few aggregation operators, and it answers an unordered bulk write that hits a duplicate key by
stopping at the first error. So civicbus uses only single-document atomic updates ($set, $setOnInsert, $inc,
$push with a filter), unique indexes, and plain queries; figures are counter documents, summed in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import OperationFailure
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.settings import ServiceSettings


def create_mongo(settings: ServiceSettings) -> AsyncMongoClient:
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        appname=f"civicbus-{settings.service_name}",
        serverSelectionTimeoutMS=5000,
    )


def database(client: AsyncMongoClient, settings: ServiceSettings) -> AsyncDatabase:
    return client[settings.mongo_db]


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")


DUPLICATE_KEY = 11000
UPSERT_CHUNK = 1000


async def insert_missing(
    collection: AsyncCollection, documents: Mapping[str, Mapping[str, Any]], attempts: int = 5
) -> set[str]:
    """Create the documents (by ``_id``) that do not exist yet, leaving existing ones as they are; returns the ids
    this call created.

    Sent as a raw ``update`` command of ``$setOnInsert`` upserts rather than through ``bulk_write``: when two
    writers upsert the same new ``_id`` at once, MongoDB retries the loser itself, but FerretDB v1 answers with a
    duplicate-key error, stops the batch there, and omits the counts PyMongo's bulk API expects. The whole command
    is idempotent, so it is simply sent again.
    """
    created: set[str] = set()
    items = list(documents.items())
    for start in range(0, len(items), UPSERT_CHUNK):
        chunk = items[start : start + UPSERT_CHUNK]
        command = {
            "update": collection.name,
            "ordered": False,
            "updates": [
                {"q": {"_id": doc_id}, "u": {"$setOnInsert": dict(on_insert)}, "upsert": True}
                for doc_id, on_insert in chunk
            ],
        }
        for attempt in range(1, attempts + 1):
            reply = await collection.database.command(command)
            created.update(str(item["_id"]) for item in reply.get("upserted", []))
            errors = reply.get("writeErrors", [])
            if not errors:
                break
            if any(error.get("code") != DUPLICATE_KEY for error in errors) or attempt == attempts:
                raise OperationFailure(f"upsert into {collection.name} failed: {errors[:3]}", details=reply)
    return created


@dataclass(frozen=True)
class Increment:
    """Add ``amounts`` to the document ``doc_id`` once for ``token`` (an event id), however often it is applied."""

    doc_id: str
    token: str
    amounts: Mapping[str, int | float]
    on_insert: Mapping[str, Any] = field(default_factory=dict)


async def apply_increments(collection: AsyncCollection, increments: Iterable[Increment]) -> int:
    """Apply increments idempotently in two bulk writes; returns how many were new.

    Each counter document keeps the tokens already applied (``applied``); the ``$inc`` and the ``$push`` of the
    token happen in one single-document update whose filter excludes documents that have the token, so a replayed
    event matches nothing. This needs no transaction, which FerretDB v1 lacks, and is safe on a real MongoDB too.
    """
    increments = list(increments)
    if not increments:
        return 0
    documents: dict[str, Mapping[str, Any]] = {}
    for increment in increments:
        documents.setdefault(increment.doc_id, {**increment.on_insert, "applied": []})
    await insert_missing(collection, documents)
    result = await collection.bulk_write(
        [
            UpdateOne(
                {"_id": increment.doc_id, "applied": {"$ne": increment.token}},
                {"$inc": dict(increment.amounts), "$push": {"applied": increment.token}},
            )
            for increment in increments
        ],
        ordered=True,  # one document may get several increments of one batch; apply them in order
    )
    return result.modified_count
