"""MongoDB access for every service (PyMongo's native async API): the write and read patterns civicbus allows.

The same code serves a real MongoDB and the embedded FerretDB v1 (SQLite). What FerretDB v1 does decides the
patterns, and each is also the fast way on a real MongoDB:

- **Look-ups and updates by ``_id`` alone.** FerretDB v1 on SQLite pushes down to the database only a filter that
  is exactly ``{_id: value}``; any other filter (``$in``, a second field, a guard) reads the whole collection.
  (The project's FerretDB build adds the ``_id`` index those queries need: see ``deploy/ferretdb/main.go``.)
- **At most** :data:`WRITE_CHUNK` **operations per write command.** FerretDB v1.24 as released keeps a database
  connection open per update of a command until the whole command ends, from a pool of 100: a larger command waits
  for itself forever, and two 50-update commands at once wedged the server for good. The project's build closes each
  update's connection at once (``deploy/ferretdb/patches``); the chunk stays, as any server's limit on one command.
- **No transactions, no conditional filters:** a write is idempotent by its own operators — ``$setOnInsert``,
  ``$addToSet``, ``$max``, ``$set`` of the same values — so applying it twice changes nothing.
- **Upserts through the raw ``update`` command.** When two writers create the same new ``_id`` at once, MongoDB
  retries the loser itself; FerretDB answers with a duplicate-key error and a reply PyMongo's bulk API cannot
  read. The command is idempotent, so it is simply sent again.
- **One writer per document, whatever the number of replicas.** FerretDB v1 applies an update by reading the
  document, changing it and writing it back in a separate transaction: two concurrent updates of one document lose
  one (measured: 48 % of two processes' ``$inc`` lost). So each document is written only by the consumer that owns
  the Kafka partition of its key, and a document many keys touch (a counter cell, a timer bucket) is kept in one
  share per partition and summed when read — never a process-local lock, which a second replica does not see.
- **Bounded in time and number.** Every operation has ``timeoutMS`` and a process at most ``maxPoolSize``
  connections (settings ``mongo_timeout_ms``, ``mongo_max_pool``): under load the embedded FerretDB wedged for good
  when every process opened as many connections as it liked with no timeout; now a stuck store fails the batch
  (a transient error, retried) and ``/readyz`` says so.
- **Figures are counter documents, summed in Python** (FerretDB v1 has few aggregation operators). A count is a
  set of tokens ``"<event id>:<amount>"`` added with ``$addToSet``: a replayed event adds the same token again,
  which changes nothing, so no figure is ever counted twice.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure
from pymongo.operations import DeleteOne, UpdateOne

from civicbus.settings import ServiceSettings

WRITE_CHUNK = 50
T = TypeVar("T")
DUPLICATE_KEY = 11000


def create_mongo(settings: ServiceSettings) -> AsyncMongoClient:
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        appname=f"civicbus-{settings.service_name}",
        serverSelectionTimeoutMS=5000,
        # Bounded in time and in number: an operation that cannot finish raises a timeout (a transient error, the
        # batch is retried) instead of waiting for ever, and one process never holds more than its share of the
        # store's connections.
        timeoutMS=settings.mongo_timeout_ms,
        maxPoolSize=settings.mongo_max_pool,
        connectTimeoutMS=5000,
    )


def database(client: AsyncMongoClient, settings: ServiceSettings) -> AsyncDatabase:
    return client[settings.mongo_db]


async def ping(client: AsyncMongoClient) -> None:
    await client.admin.command("ping")


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    return (items[start : start + WRITE_CHUNK] for start in range(0, len(items), WRITE_CHUNK))


async def bulk_write(
    collection: AsyncCollection, operations: Sequence[UpdateOne | DeleteOne], *, ordered: bool = True
) -> int:
    """Apply updates (by ``_id``, without upsert) in commands of at most WRITE_CHUNK; returns how many changed."""
    modified = 0
    for chunk in _chunks(list(operations)):
        result = await collection.bulk_write(list(chunk), ordered=ordered)
        modified += result.modified_count + result.deleted_count
    return modified


@dataclass(frozen=True)
class UpsertResult:
    created: set[str]
    modified: int

    @property
    def changed(self) -> int:
        return len(self.created) + self.modified


async def upsert_by_id(
    collection: AsyncCollection, updates: Mapping[str, Mapping[str, Any]], attempts: int = 5
) -> UpsertResult:
    """Apply an idempotent update to each ``_id``, creating documents that do not exist yet. Idempotent it must
    be: when a concurrent writer created one of the documents, the whole command is sent again."""
    created: set[str] = set()
    modified = 0
    for chunk in _chunks(list(updates.items())):
        command = {
            "update": collection.name,
            "ordered": False,
            "updates": [{"q": {"_id": doc_id}, "u": dict(update), "upsert": True} for doc_id, update in chunk],
        }
        for attempt in range(1, attempts + 1):
            reply = await collection.database.command(command)
            errors = reply.get("writeErrors", [])
            if not errors:
                created.update(str(item["_id"]) for item in reply.get("upserted", []))
                modified += int(reply.get("nModified", 0))
                break
            if any(error.get("code") != DUPLICATE_KEY for error in errors) or attempt == attempts:
                raise OperationFailure(f"upsert into {collection.name} failed: {errors[:3]}", details=reply)
            # A concurrent writer created one of the documents: send the (idempotent) command again. What the
            # failed attempt created counts as existing then, which only ever under-reports "created".
    return UpsertResult(created, modified)


async def insert_missing(collection: AsyncCollection, documents: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Create the documents (by ``_id``) that do not exist yet, leaving existing ones as they are; returns the ids
    this call created."""
    result = await upsert_by_id(collection, {doc_id: {"$setOnInsert": dict(doc)} for doc_id, doc in documents.items()})
    return result.created


async def find_by_ids(
    collection: AsyncCollection, ids: Iterable[str], projection: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """Documents by ``_id``, one pushed-down look-up each, WRITE_CHUNK at a time (``$in`` would scan)."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(wanted):
        documents = await asyncio.gather(*(collection.find_one({"_id": doc_id}, projection) for doc_id in chunk))
        found.update((doc_id, document) for doc_id, document in zip(chunk, documents, strict=True) if document)
    return found


# --------------------------------------------------------------------------- idempotent counters


@dataclass(frozen=True)
class Increment:
    """Add ``amounts`` to the counter document ``doc_id`` once for ``token`` (an event id), however often applied."""

    doc_id: str
    token: str
    amounts: Mapping[str, int]
    on_insert: Mapping[str, Any] = field(default_factory=dict)


async def apply_increments(collection: AsyncCollection, increments: Iterable[Increment]) -> int:
    """Add the increments' tokens to their counter documents; returns how many documents changed."""
    tokens: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    on_insert: dict[str, Mapping[str, Any]] = {}
    for increment in increments:
        on_insert.setdefault(increment.doc_id, increment.on_insert)
        for name, amount in increment.amounts.items():
            if amount:
                tokens[increment.doc_id][name].append(f"{increment.token}:{amount}")
    updates = {
        doc_id: {
            "$setOnInsert": dict(on_insert[doc_id]),
            "$addToSet": {name: {"$each": values} for name, values in fields.items()},
        }
        for doc_id, fields in tokens.items()
    }
    return (await upsert_by_id(collection, updates)).changed if updates else 0


def counter_value(document: Mapping[str, Any], name: str) -> int:
    """The figure a counter document holds under ``name``: the sum of its tokens' amounts."""
    return sum(int(token.rsplit(":", 1)[1]) for token in document.get(name, ()))
