"""API keys (API 密钥): every HTTP API except health and metrics requires one.

A key is shown once when it is created (``civicbus keys create``) and stored only as its SHA-256 hash — keys are
long random strings, so a fast hash is as safe as a slow one and costs nothing per request. Only ``system`` and
``admin`` keys submit events (:data:`SUBMITTERS`); an ``open311`` key submits only Open311 requests. A ``workbench``
key is the workbench's (工作台): it acts on tickets for the person signed in there, whom each command names.

A service remembers each key's answer for :data:`CACHE_SECONDS`, so a key revoked with ``civicbus keys revoke``
keeps working for up to 30 s on each running service. The memory is bounded (:data:`CACHE_ENTRIES`, least
recently used out first): a flood of made-up keys cannot grow it. A client address that fails
:data:`FAILURES_ALLOWED` times within :data:`FAILURE_WINDOW_S` is answered 429 with Retry-After until the window
has passed (behind a proxy that address is the proxy's: the proxy should limit too).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader
from pymongo.asynchronous.database import AsyncDatabase

API_KEYS_COLLECTION = "api_keys"
KEY_PREFIX = "cbk_"
CACHE_SECONDS = 30.0
CACHE_ENTRIES = 4096
FAILURES_ALLOWED = 20
FAILURE_WINDOW_S = 60.0
THROTTLED_ADDRESSES = 10_000


class Role(StrEnum):
    admin = "admin"  # 管理员
    leader = "leader"  # 领导
    unit = "unit"  # 承办单位
    auditor = "auditor"  # 审计（只读）
    system = "system"  # 上游系统
    open311 = "open311"  # Open311 客户端（只能提交 Open311 诉求）
    workbench = "workbench"  # 工作台：代已登录的人员操作工单


SUBMITTERS = (Role.system, Role.admin)
"""The roles whose keys submit complaints, alarms, inspections, batches and work orders."""


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    unit: str = ""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(db: AsyncDatabase, name: str, role: Role, unit: str = "") -> str:
    """Store a new key's hash and return the key itself — the only time it is seen."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    await db[API_KEYS_COLLECTION].insert_one(
        {"_id": hash_key(key), "name": name, "role": str(role), "unit": unit, "created_at": datetime.now(UTC)}
    )
    return key


async def list_keys(db: AsyncDatabase) -> list[dict]:
    """Every key's record (never the key: only its hash is stored), oldest first."""
    return await db[API_KEYS_COLLECTION].find({}, sort=[("created_at", 1)]).to_list(None)


async def revoke_key(db: AsyncDatabase, prefix: str) -> list[str]:
    """Disable the key whose hash starts with ``prefix`` (as ``civicbus keys list`` shows it), if exactly one does;
    the names of the keys that match."""
    found = await db[API_KEYS_COLLECTION].find({"_id": {"$regex": f"^{re.escape(prefix)}"}}).to_list(None)
    if len(found) == 1:
        await db[API_KEYS_COLLECTION].update_one({"_id": found[0]["_id"]},
                                                 {"$set": {"disabled": True, "revoked_at": datetime.now(UTC)}})
    return [item["name"] for item in found]


class KeyStore:
    """Looks keys up by hash, remembering answers briefly (and a bounded number of them) so a request costs no
    MongoDB round trip."""

    def __init__(self, db: AsyncDatabase, entries: int = CACHE_ENTRIES) -> None:
        self._collection = db[API_KEYS_COLLECTION]
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._entries = entries

    async def find(self, key: str) -> Principal | None:
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and now - cached[0] < CACHE_SECONDS:
            self._cache.move_to_end(digest)
            return cached[1]
        document = await self._collection.find_one({"_id": digest})
        principal = (
            Principal(document["name"], Role(document["role"]), document.get("unit", ""))
            if document and not document.get("disabled")
            else None
        )
        self._cache[digest] = (now, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > self._entries:
            self._cache.popitem(last=False)
        return principal


class KeyThrottle:
    """Failed key attempts per client address, over a fixed window; bounded like the key cache."""

    def __init__(self, allowed: int = FAILURES_ALLOWED, window_s: float = FAILURE_WINDOW_S) -> None:
        self._allowed = allowed
        self._window_s = window_s
        self._failures: OrderedDict[str, tuple[float, int]] = OrderedDict()  # address: window start, failures

    def retry_after(self, address: str) -> int:
        """Seconds until this address may try again; 0 if it may now."""
        start, failures = self._failures.get(address, (0.0, 0))
        left = start + self._window_s - time.monotonic()
        return max(1, round(left)) if failures >= self._allowed and left > 0 else 0

    def failed(self, address: str) -> None:
        now = time.monotonic()
        start, failures = self._failures.pop(address, (now, 0))
        self._failures[address] = (start, failures + 1) if now - start < self._window_s else (now, 1)
        while len(self._failures) > THROTTLED_ADDRESSES:
            self._failures.popitem(last=False)


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


async def authenticate(request: Request, key: str) -> Principal | None:
    """The key's holder, or None; 429 for an address that has sent too many wrong keys (before the key is even
    looked at, so guessing gains nothing). No key at all is not a guess and is not counted."""
    throttle: KeyThrottle = request.app.state.key_throttle
    address = _address(request)
    wait = throttle.retry_after(address)
    if wait:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"密钥验证失败次数过多，请 {wait} 秒后重试 (too many failed API key attempts; retry later)",
            headers={"Retry-After": str(wait)},
        )
    if not key:
        return None
    principal = await request.app.state.key_store.find(key)
    if principal is None:
        throttle.failed(address)
    return principal


_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="API 密钥 (API key), from `civicbus keys create`"
)


async def require_api_key(request: Request, key: Annotated[str | None, Depends(_api_key_header)]) -> Principal:
    principal = await authenticate(request, key or "")
    if principal is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="缺少或无效的 API 密钥 (missing or invalid API key in the X-API-Key header)",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(require_api_key)]


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency admitting only keys of the given roles (403 with the reason otherwise)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in roles:
            allowed = "、".join(str(role) for role in roles)
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=f"无权操作：需要 {allowed} 角色的密钥 (this needs a key with role {', '.join(roles)})",
            )
        return principal

    return check


Submitter = Annotated[Principal, Depends(require_roles(*SUBMITTERS))]
