"""API keys (API 密钥): every HTTP API except health and metrics requires one.

A key is shown once when it is created (``civicbus keys create``) and stored only as its SHA-256 hash — keys are
long random strings, so a fast hash is as safe as a slow one and costs nothing per request. Which role may do
what is refined with the reporting and closed-loop work; the role and unit are recorded from day one.
"""

from __future__ import annotations

import hashlib
import secrets
import time
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


class Role(StrEnum):
    admin = "admin"  # 管理员
    leader = "leader"  # 领导
    unit = "unit"  # 承办单位
    auditor = "auditor"  # 审计（只读）
    system = "system"  # 上游系统


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


class KeyStore:
    """Looks keys up by hash, remembering answers briefly so a request costs no MongoDB round trip."""

    def __init__(self, db: AsyncDatabase) -> None:
        self._collection = db[API_KEYS_COLLECTION]
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def find(self, key: str) -> Principal | None:
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        document = await self._collection.find_one({"_id": digest})
        principal = (
            Principal(document["name"], Role(document["role"]), document.get("unit", ""))
            if document and not document.get("disabled")
            else None
        )
        self._cache[digest] = (now, principal)
        return principal


_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="API 密钥 (API key), from `civicbus keys create`"
)


async def require_api_key(request: Request, key: Annotated[str | None, Depends(_api_key_header)]) -> Principal:
    store: KeyStore = request.app.state.key_store
    principal = await store.find(key) if key else None
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
