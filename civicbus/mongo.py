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
        documents.setdefault(increment.doc_id, increment.on_insert)
    await collection.bulk_write(
        [
            UpdateOne({"_id": doc_id}, {"$setOnInsert": {**on_insert, "applied": []}}, upsert=True)
            for doc_id, on_insert in documents.items()
        ],
        ordered=False,
    )
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
