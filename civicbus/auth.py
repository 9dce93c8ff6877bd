"""API keys (API 密钥): every HTTP API except health and metrics requires one.

A key is shown once when it is created (``civicbus keys create``) and stored only as its SHA-256 hash — keys are
long random strings, so a fast hash is as safe as a slow one and costs nothing per request. Only ``system`` and
``admin`` keys submit events (:data:`SUBMITTERS`); an ``open311`` key submits only Open311 requests. A ``workbench``
key is the workbench's (工作台): it acts on tickets for the person signed in there, whom each command names.

A service remembers each key's answer for :data:`CACHE_SECONDS`, so a key revoked with ``civicbus keys revoke``
keeps working for up to 30 s on each running service. The memory is bounded (:data:`CACHE_ENTRIES`, least
recently used out first): a flood of made-up keys cannot grow it. A client address that fails
:data:`FAILURES_ALLOWED` times within :data:`FAILURE_WINDOW_S` is answered 429 with Retry-After until the oldest of
those failures leaves the window (behind a proxy that address is the proxy's: the proxy should limit too).

The count holds across every replica of every service that takes keys (:class:`KeyThrottle`): each wrong key is a
document inserted into :data:`KEY_FAILURES_COLLECTION` by the instance that saw it — insert-only, as FerretDB v1 has
no atomic increment and two writers of one counter lose each other's updates (decisions 4, 12). Each instance reads
the window's failures in one query every couple of seconds (``key_throttle_refresh_s``) and deletes older ones, so a
request never waits for the store to be judged; its own failures count at once, also while the store is away.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from heapq import nlargest
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from civicbus.logs import get_logger

log = get_logger(__name__)
API_KEYS_COLLECTION = "api_keys"
KEY_FAILURES_COLLECTION = "key_failures"
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


def retry_after_s(failures: Iterable[float], now: float, allowed: int = FAILURES_ALLOWED,
                  window_s: float = FAILURE_WINDOW_S) -> int:
    """Seconds until an address whose keys failed at these moments (Unix time) may try again; 0 if it may now.
    With ``allowed`` of them within the window it waits until the ``allowed``-th most recent leaves the window —
    the oldest, when there are just ``allowed`` (replicas answering at once may have let a few more through)."""
    recent = sorted(moment for moment in failures if now - moment < window_s)
    if len(recent) < allowed:
        return 0
    return max(1, math.ceil(recent[-allowed] + window_s - now))


Failures = dict[str, float]
"""One address's failed key attempts: failure id (the document's ``_id``) → moment (Unix time)."""


class KeyThrottle:
    """Failed key attempts per client address, counted across every instance that shares the store.

    What a request is judged on is in memory: this instance's own failures (counted at once) merged by id with
    everyone's as the last :meth:`refresh` read them — so a failure is never counted twice, a single instance
    blocks on the attempt after the ``allowed``-th without waiting for a refresh, and failures spread over replicas
    block the address on all of them within one refresh interval. Both maps are bounded to ``addresses`` addresses
    (a flood from many addresses cannot grow them) and keep only the moments within the window."""

    def __init__(self, db: AsyncDatabase, allowed: int = FAILURES_ALLOWED, window_s: float = FAILURE_WINDOW_S,
                 addresses: int = THROTTLED_ADDRESSES) -> None:
        self._failures = db[KEY_FAILURES_COLLECTION]
        self._allowed = allowed
        self._window_s = window_s
        self._addresses = addresses
        self._own: OrderedDict[str, Failures] = OrderedDict()  # least recently failed first
        self._everyone: dict[str, Failures] = {}  # as of the last refresh, this instance's included
        self._store_away = False  # logged once when the store stops answering, once when it answers again

    def retry_after(self, address: str) -> int:
        """Seconds until this address may try again; 0 if it may now."""
        failures = {**self._everyone.get(address, {}), **self._own.get(address, {})}
        return retry_after_s(failures.values(), time.time(), self._allowed, self._window_s) if failures else 0

    async def failed(self, address: str) -> None:
        """Count a wrong key here at once and store it for the other instances (a store that does not take it is
        logged: the failure still counts here)."""
        now = time.time()
        failure_id = secrets.token_hex(12)
        own = {known: moment for known, moment in self._own.pop(address, {}).items() if now - moment < self._window_s}
        own[failure_id] = now
        self._own[address] = own
        while len(self._own) > self._addresses:
            self._own.popitem(last=False)
        try:
            await self._failures.insert_one({"_id": failure_id, "address": address,
                                             "at": datetime.fromtimestamp(now, UTC)})
        except PyMongoError as error:
            log.warning("密钥验证失败未能记录，仅本实例计数 (failed key attempt not stored; counted by this instance "
                        "only)", error=str(error))

    async def refresh(self) -> None:
        """Read every instance's failures (one query: the collection holds about a window's worth) and delete, by
        ``_id`` and only when there are some, those older than the window. Nearly always the collection is empty
        and a refresh writes nothing."""
        now = time.time()
        everyone: defaultdict[str, Failures] = defaultdict(dict)
        expired = []
        async for failure in self._failures.find({}, projection={"address": 1, "at": 1}):
            moment = failure["at"].timestamp()  # the client is tz_aware (civicbus.mongo)
            if now - moment < self._window_s:
                everyone[failure["address"]][failure["_id"]] = moment
            else:
                expired.append(failure["_id"])  # no instance counts it any more
        if expired:
            await self._failures.delete_many({"_id": {"$in": expired}})
        # The most failing addresses first, and per address the most recent failures: the ones a wait depends on.
        most = nlargest(self._addresses, everyone.items(), key=lambda item: len(item[1]))
        self._everyone = {address: dict(nlargest(self._allowed, failures.items(), key=lambda item: item[1]))
                          for address, failures in most}
        for address in list(self._own):
            recent = {known: moment for known, moment in self._own[address].items() if now - moment < self._window_s}
            if recent:
                self._own[address] = recent
            else:
                del self._own[address]

    async def watch(self, interval_s: float) -> None:
        """Refresh every ``interval_s`` while the service runs. A store that does not answer is logged and tried
        again; meanwhile each instance goes on counting what it sees itself."""
        while True:
            try:
                await self.refresh()
            except Exception as error:  # never let the watcher die: the throttle would quietly become per instance
                if not self._store_away:
                    log.warning("密钥失败次数暂无法从数据库读取，各实例仅按本实例计数 (failed key attempts not readable "
                                "from the store; each instance counts only its own)", error=f"{type(error).__name__}: "
                                f"{error}")
                self._store_away = True
            else:
                if self._store_away:
                    log.info("密钥失败次数恢复跨实例计数 (failed key attempts counted across instances again)")
                self._store_away = False
            await asyncio.sleep(interval_s)


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
        await throttle.failed(address)
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
