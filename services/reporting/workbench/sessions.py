"""Sign-in sessions (登录会话) and login throttling (登录限流), both kept in MongoDB so every replica agrees.

A session is a random token in an HttpOnly, SameSite=Strict cookie; the store keeps only its SHA-256 (a stolen
copy of the collection signs no one in) with the person's username, a CSRF token the page sends back in a header
on every state-changing request, and when it ends. Sessions end at their time, at logout, when the person changes
their password (the others), and when an admin disables or resets the account.

Throttling counts failed sign-ins per username: after :data:`FAILURES_ALLOWED` failures in a row within
:data:`FAILURE_WINDOW`, every attempt is answered 429 until the oldest of them leaves the window — the right
password included, so guessing on gains nothing. Each failure is its own inserted document (insert-only: FerretDB
v1 updates by read-modify-write, and two replicas counting into one document would lose counts); a success deletes
the username's failures up to its moment, which ends the run.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from civicbus.auth import retry_after_s

SESSIONS = "workbench_sessions"
LOGIN_FAILURES = "workbench_login_failures"
COOKIE = "civicbus_session"
CSRF_HEADER = "X-CSRF-Token"
FAILURES_ALLOWED = 5
FAILURE_WINDOW = timedelta(minutes=15)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    id: str  # the token's hash
    username: str
    csrf_token: str
    expires_at: datetime


class SessionStore:
    def __init__(self, db: AsyncDatabase, hours: float) -> None:
        self._sessions = db[SESSIONS]
        self._lifetime = timedelta(hours=hours)

    async def ensure_indexes(self) -> None:
        await self._sessions.create_index([("username", ASCENDING)])  # FerretDB v1 keeps it, filters by scanning

    async def open(self, username: str, now: datetime | None = None) -> tuple[str, Session]:
        """A new session: the cookie's token (shown only here) and what is stored. Expired sessions go on the way."""
        now = now or datetime.now(UTC)
        token = secrets.token_urlsafe(32)
        session = Session(token_hash(token), username, secrets.token_urlsafe(32), now + self._lifetime)
        await self._sessions.delete_many({"expires_at": {"$lt": now}})
        await self._sessions.insert_one({"_id": session.id, "username": username, "csrf_token": session.csrf_token,
                                         "created_at": now, "expires_at": session.expires_at})
        return token, session

    async def find(self, token: str, now: datetime | None = None) -> Session | None:
        document = await self._sessions.find_one({"_id": token_hash(token)}) if token else None
        if document is None or document["expires_at"] <= (now or datetime.now(UTC)):
            return None
        return Session(document["_id"], document["username"], document["csrf_token"], document["expires_at"])

    async def close(self, session_id: str) -> None:
        await self._sessions.delete_one({"_id": session_id})

    async def close_all(self, username: str, keep: str = "") -> None:
        """End the account's sessions, but ``keep`` (the one changing its own password)."""
        await self._sessions.delete_many({"username": username, "_id": {"$ne": keep}})

    @property
    def lifetime(self) -> timedelta:
        return self._lifetime


def throttle_wait(failures: Sequence[datetime], now: datetime, allowed: int = FAILURES_ALLOWED,
                  window: timedelta = FAILURE_WINDOW) -> int:
    """Seconds until the next sign-in may be tried, given the moments of the current run of failures (0: now): the
    kernel's arithmetic for wrong API keys (:func:`civicbus.auth.retry_after_s`), with this throttle's limits."""
    return retry_after_s((moment.timestamp() for moment in failures), now.timestamp(), allowed,
                         window.total_seconds())


def wait_text(seconds: int) -> str:
    return f"登录失败次数过多，请 {max(1, math.ceil(seconds / 60))} 分钟后再试"


class LoginThrottle:
    def __init__(self, db: AsyncDatabase) -> None:
        self._failures = db[LOGIN_FAILURES]

    async def ensure_indexes(self) -> None:
        await self._failures.create_index([("username", ASCENDING), ("at", ASCENDING)])

    async def wait(self, username: str, now: datetime | None = None) -> int:
        now = now or datetime.now(UTC)
        found = self._failures.find({"username": username, "at": {"$gt": now - FAILURE_WINDOW}}, projection={"at": 1})
        return throttle_wait([document["at"] async for document in found], now)

    async def failed(self, username: str, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        document: dict[str, Any] = {"_id": str(uuid.uuid4()), "username": username, "at": now}
        await self._failures.insert_one(document)
        await self._failures.delete_many({"at": {"$lt": now - FAILURE_WINDOW}})  # nobody counts those any more

    async def succeeded(self, username: str, now: datetime | None = None) -> None:
        await self._failures.delete_many({"username": username, "at": {"$lte": now or datetime.now(UTC)}})
