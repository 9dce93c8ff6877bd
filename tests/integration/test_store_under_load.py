"""The embedded store under concurrent bulk writes: FerretDB v1.24 held each update's SQLite connection until its
whole command ended, so two 50-update commands at once took the pool's 100 connections and the server stopped
answering for good. The project's build closes each update's iterator at once (deploy/ferretdb/patches)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pymongo import AsyncMongoClient

from civicbus.mongo import WRITE_CHUNK, upsert_by_id

pytestmark = pytest.mark.integration


async def test_concurrent_bulk_upserts_from_many_writers_all_complete(stack):
    client = AsyncMongoClient(stack.mongo_url, tz_aware=True, timeoutMS=30_000, maxPoolSize=20)
    db = client[f"load_{uuid.uuid4().hex[:8]}"]
    writers, rounds = 12, 3
    try:
        async def writer(number: int) -> None:
            for round_ in range(rounds):
                await upsert_by_id(db["cells"], {f"{number}-{round_}-{op}": {"$set": {"n": op}}
                                                 for op in range(WRITE_CHUNK)})

        await asyncio.wait_for(asyncio.gather(*(writer(number) for number in range(writers))), timeout=60)
        assert await db["cells"].count_documents({}) == writers * rounds * WRITE_CHUNK
        assert await client.admin.command("ping") == {"ok": 1.0}, "the store still answers"
    finally:
        await client.drop_database(db.name)
        await client.close()
