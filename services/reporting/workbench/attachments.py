"""Photos and files for 办结 and 进展 (附件): type-checked by their bytes, size-limited, kept in a real store, and
served only to people who may see their ticket.

The bytes live behind one small interface, :class:`AttachmentStore`, with two stores: the filesystem (the
default) and MongoDB GridFS (pymongo's async ``AsyncGridFSBucket``). GridFS works on the embedded FerretDB v1, but
reads a file by filtering its chunks on ``files_id``, which FerretDB answers by scanning every chunk of every file
(measured: 0.06 s for a 1 MB photo with 1 MB stored, 1.8 s with 80 MB stored) — so it is the choice for a real
MongoDB, where GridFS's index serves the read. What is known about each file (its ticket, name, type, size, who
uploaded it) is one document in ``workbench_files`` by id, the same for both stores.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

FILES = "workbench_files"
GRIDFS_BUCKET = "workbench_attachments"
FILE_ID = re.compile(r"^[0-9a-f]{32}$")

ALLOWED_TYPES = {"image/jpeg": "JPEG 图片", "image/png": "PNG 图片", "image/webp": "WebP 图片",
                 "application/pdf": "PDF 文件"}


def sniff_type(head: bytes) -> str | None:
    """The file's type by its first bytes (its magic number), or None when it is none of the allowed four: a name
    or a browser's Content-Type says nothing about what the bytes are."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def clean_name(name: str, content_type: str) -> str:
    """The name to show: no folders, no control characters, at most 100 characters, never empty."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(character for character in base if character.isprintable()).strip()[:100]
    return base or f"附件.{content_type.rsplit('/', 1)[-1]}"


def new_file_id() -> str:
    return secrets.token_hex(16)


class AttachmentStore(Protocol):
    """Where an attachment's bytes are kept, by file id (ids are made here, never taken from a request)."""

    async def put(self, file_id: str, data: bytes) -> None: ...

    async def get(self, file_id: str) -> bytes | None: ...


class FilesystemStore:
    """One file per attachment under ``folder`` (two levels of 256 folders at most). Written to a temporary name
    and renamed, so a reader never sees half a file; several replicas need the folder on a shared volume."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def _path(self, file_id: str) -> Path:
        if not FILE_ID.match(file_id):
            raise ValueError(f"not a file id: {file_id!r}")
        return self._folder / file_id[:2] / file_id

    async def put(self, file_id: str, data: bytes) -> None:
        path = self._path(file_id)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{file_id}.partial")
            partial.write_bytes(data)
            os.replace(partial, path)

        await asyncio.to_thread(write)

    async def get(self, file_id: str) -> bytes | None:
        path = self._path(file_id)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None


class GridFSStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=GRIDFS_BUCKET)

    async def put(self, file_id: str, data: bytes) -> None:
        await self._bucket.upload_from_stream_with_id(file_id, file_id, data)

    async def get(self, file_id: str) -> bytes | None:
        try:
            stream = await self._bucket.open_download_stream(file_id)
        except NoFile:
            return None
        return await stream.read()


def attachment_store(kind: str, db: AsyncDatabase, folder: Path) -> AttachmentStore:
    return GridFSStore(db) if kind == "gridfs" else FilesystemStore(folder)


@dataclass(frozen=True)
class StoredFile:
    id: str
    ticket_id: str
    name: str
    content_type: str
    size: int
    uploaded_by: str

    def as_json(self, base_url: str) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "content_type": self.content_type, "size": self.size,
                "url": file_url(base_url, self.id)}


def file_url(base_url: str, file_id: str) -> str:
    return f"{base_url.rstrip('/')}/workbench/api/files/{file_id}"


def _stored(document: dict[str, Any]) -> StoredFile:
    return StoredFile(document["_id"], document["ticket_id"], document["name"], document["content_type"],
                      document["size"], document["uploaded_by"])


class Attachments:
    """Files of tickets: the bytes in the store, what is known of them in ``workbench_files``. A file is listed on
    its ticket once an applied action used it; until then only its id (from the upload) leads to it."""

    def __init__(self, db: AsyncDatabase, store: AttachmentStore) -> None:
        self._files = db[FILES]
        self.store = store

    async def ensure_indexes(self) -> None:
        await self._files.create_index([("ticket_id", ASCENDING)])

    async def add(self, ticket_id: str, name: str, content_type: str, data: bytes, uploaded_by: str) -> StoredFile:
        file_id = new_file_id()
        await self.store.put(file_id, data)  # the bytes first: a file known here always has them
        stored = StoredFile(file_id, ticket_id, clean_name(name, content_type), content_type, len(data), uploaded_by)
        await self._files.insert_one({"_id": file_id, "ticket_id": ticket_id, "name": stored.name,
                                      "content_type": content_type, "size": stored.size, "uploaded_by": uploaded_by,
                                      "at": datetime.now(UTC), "attached": False})
        return stored

    async def find(self, file_id: str) -> StoredFile | None:
        document = await self._files.find_one({"_id": file_id}) if FILE_ID.match(file_id) else None
        return _stored(document) if document else None

    async def attached(self, file_ids: list[str]) -> None:
        """Mark files used by an applied action, so its ticket lists them (the same value every time)."""
        for file_id in file_ids:
            await self._files.update_one({"_id": file_id}, {"$set": {"attached": True}})

    async def of_ticket(self, ticket_id: str) -> list[StoredFile]:
        documents = await self._files.find({"ticket_id": ticket_id, "attached": True}).to_list(None)
        return [_stored(document) for document in sorted(documents, key=lambda document: document["at"])]
