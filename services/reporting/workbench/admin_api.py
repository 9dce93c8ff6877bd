"""Account and key administration (账号与密钥管理), for 管理员 only: people's accounts of the workbench, and the API
keys of systems (the kernel's ``civicbus.auth``: stored hashed, shown once, revoked by the start of the hash)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from civicbus.auth import Role, create_key, list_keys, revoke_key

from .accounts import MAX_PASSWORD, MIN_PASSWORD, AccountError, AccountExists, checked_account
from .people import ActingAdmin, ReadingAdmin, district, workbench

router = APIRouter(prefix="/workbench/api", tags=["workbench (工单处置工作台)"])
KEY_ID_LENGTH = 12  # the start of a key's hash shown and used to revoke it


class NewAccount(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    username: str = Field(min_length=2, max_length=32)
    name: str = Field(min_length=1, max_length=50)
    role: str = Field(description="staff | dispatcher | callback | leader | admin")
    unit: str = Field(default="", max_length=64, description="承办人: the unit; 派单员/回访员: the dispatcher unit")
    leader: str = Field(default="", max_length=64, description="领导: the leader's id in district.yaml")
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1, max_length=100)
    role: Role
    unit: str = Field(default="", max_length=64)


@router.get("/accounts", summary="Every account (账号列表)")
async def accounts(request: Request, _: ReadingAdmin) -> list[dict[str, Any]]:
    where = district(request)
    def leader_of(account: Any) -> str:
        leader = where.leaders.get(account.leader)
        return f"{leader.name}（{leader.title}）" if leader else ""

    return [{**account.as_json(), "unit_name": where.units[account.unit].name if account.unit in where.units else "",
             "leader_name": leader_of(account)}
            for account in await workbench(request).accounts.all()]


@router.get("/leaders", summary="The district's leaders (领导), for a leader's account")
async def leaders(request: Request, _: ReadingAdmin) -> list[dict[str, str]]:
    return [{"id": leader.id, "name": leader.name, "title": leader.title, "role": str(leader.role)}
            for leader in district(request).leaders.values()]


@router.post("/accounts", status_code=201, summary="Create an account (新建账号)")
async def create_account(body: NewAccount, request: Request, _: ActingAdmin) -> dict[str, Any]:
    try:
        account = checked_account(district(request), body.username, body.name, body.role, body.unit, body.leader)
        await workbench(request).accounts.create(account, body.password)
    except AccountExists as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from None
    except AccountError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from None
    return account.as_json()


async def _set_disabled(request: Request, username: str, disabled: bool) -> Response:
    store = workbench(request)
    if not await store.accounts.set_disabled(username, disabled):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"账号 {username} 不存在")
    if disabled:
        await store.sessions.close_all(username)
    return Response(status_code=204)


@router.post("/accounts/{username}/disable", status_code=204, summary="Disable an account (停用); its sessions end")
async def disable(username: str, request: Request, admin: ActingAdmin) -> Response:
    if username == admin.account.username:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="不能停用自己的账号")
    return await _set_disabled(request, username, True)


@router.post("/accounts/{username}/enable", status_code=204, summary="Enable an account again (启用)")
async def enable(username: str, request: Request, _: ActingAdmin) -> Response:
    return await _set_disabled(request, username, False)


@router.post("/accounts/{username}/reset-password", status_code=204,
             summary="Set a new password (重置密码); the account's sessions end")
async def reset_password(username: str, body: NewPassword, request: Request, _: ActingAdmin) -> Response:
    store = workbench(request)
    if not await store.accounts.set_password(username, body.password):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"账号 {username} 不存在")
    await store.sessions.close_all(username)
    return Response(status_code=204)


@router.get("/keys", summary="API keys of systems (系统密钥), by the start of their hash")
async def keys(request: Request, _: ReadingAdmin) -> list[dict[str, Any]]:
    return [{"id": key["_id"][:KEY_ID_LENGTH], "name": key["name"], "role": key["role"], "unit": key.get("unit", ""),
             "created_at": key["created_at"].isoformat(), "disabled": bool(key.get("disabled", False))}
            for key in await list_keys(request.app.state.runtime.db)]


@router.post("/keys", status_code=201, summary="Issue an API key (签发密钥): shown once, stored hashed")
async def issue_key(body: NewKey, request: Request, _: ActingAdmin) -> dict[str, str]:
    if body.role is Role.unit and body.unit not in district(request).units:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"单位密钥须属于辖区内的单位（{body.unit or '未填写'}）")
    key = await create_key(request.app.state.runtime.db, body.name, body.role, body.unit if body.role is Role.unit else "")
    return {"key": key}


@router.post("/keys/{prefix}/revoke", status_code=204, summary="Revoke a key (吊销): refused within 30 s")
async def revoke(prefix: str, request: Request, _: ActingAdmin) -> Response:
    if not prefix or not all(character in "0123456789abcdef" for character in prefix) or len(prefix) < 8:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="密钥编号应为其哈希的前 8 位以上十六进制数字")
    matched = await revoke_key(request.app.state.runtime.db, prefix)
    if not matched:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"没有密钥 {prefix}")
    if len(matched) > 1:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"{len(matched)} 个密钥以 {prefix} 开头，请给出更长的编号")
    return Response(status_code=204)
