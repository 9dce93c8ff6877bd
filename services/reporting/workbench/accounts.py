"""People's accounts (人员账号) beside the API keys of systems: who a person is, what role they play, and their
password, hashed with Argon2id (argon2-cffi's ``PasswordHasher``, never a hand-rolled hash).

Roles (岗位) are the workbench's, finer than the state machine's: 承办人 ``staff`` acts for one unit; 派单员
``dispatcher`` and 回访员 ``callback`` both sit in the district's dispatcher unit (综治中心) but see different queues;
领导 ``leader`` is one of the district's leaders; 管理员 ``admin`` manages accounts. What triage's state machine is
told (:func:`machine_role`) is ``unit`` with the unit, ``leader`` or ``admin``: triage stays the one judge of what a
person may do to a ticket.

Collection ``workbench_accounts``, ``_id`` = the username. Accounts are created and changed by people through the
admin API or the CLI — rare writes, one at a time — so there is no partition to own them by.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from civicbus.district import District

ACCOUNTS = "workbench_accounts"
USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")  # ASCII: it travels in the X-Actor-Account header
MIN_PASSWORD = 8
MAX_PASSWORD = 200  # Argon2 takes any length; a megabyte "password" would only cost us time


class PersonRole(StrEnum):
    staff = "staff"  # 承办人
    dispatcher = "dispatcher"  # 派单员
    callback = "callback"  # 回访员
    leader = "leader"  # 领导
    admin = "admin"  # 管理员


ROLE_NAMES = {
    PersonRole.staff: "承办人",
    PersonRole.dispatcher: "派单员",
    PersonRole.callback: "回访员",
    PersonRole.leader: "领导",
    PersonRole.admin: "管理员",
}


class AccountError(ValueError):
    """An account that cannot be created as asked; the message is for the person asking (Chinese)."""


class AccountExists(AccountError):
    """The username is taken."""


@dataclass(frozen=True)
class Account:
    username: str
    name: str
    role: PersonRole
    unit: str = ""
    leader: str = ""
    disabled: bool = False

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Account:
        return cls(document["_id"], document["name"], PersonRole(document["role"]), document.get("unit", ""),
                   document.get("leader", ""), bool(document.get("disabled", False)))

    def as_json(self) -> dict[str, Any]:
        return {"username": self.username, "name": self.name, "role": str(self.role),
                "role_name": ROLE_NAMES[self.role], "unit": self.unit, "leader": self.leader,
                "disabled": self.disabled}


def machine_role(account: Account) -> tuple[str, str]:
    """The role and unit triage's state machine knows the person by: 承办人, 派单员 and 回访员 act for their unit."""
    if account.role in (PersonRole.staff, PersonRole.dispatcher, PersonRole.callback):
        return "unit", account.unit
    return str(account.role), ""


def checked_account(district: District, username: str, name: str, role: str, unit: str = "",
                    leader: str = "") -> Account:
    """A new account's fields, checked against the district: a 承办人's unit exists, 派单员 and 回访员 belong to
    the dispatcher unit (filled in when not given), a 领导 is one of the district's leaders."""
    username, name, unit, leader = username.strip(), name.strip(), unit.strip(), leader.strip()
    if not USERNAME.match(username):
        raise AccountError("用户名须为 2–32 位小写字母、数字或 . _ -，以字母开头")
    if not 1 <= len(name) <= 50:
        raise AccountError("姓名须为 1–50 个字")
    try:
        chosen = PersonRole(role)
    except ValueError:
        raise AccountError(f"未知岗位 {role}：应为 {'、'.join(PersonRole)}") from None
    if chosen is PersonRole.staff:
        if unit not in district.units:
            raise AccountError(f"承办人须属于辖区内的单位（{unit or '未填写'}）")
        leader = ""
    elif chosen in (PersonRole.dispatcher, PersonRole.callback):
        if unit and unit != district.dispatcher.id:
            raise AccountError(f"{ROLE_NAMES[chosen]}属于派单单位 {district.dispatcher.name}（{district.dispatcher.id}）")
        unit, leader = district.dispatcher.id, ""
    elif chosen is PersonRole.leader:
        if leader not in district.leaders:
            raise AccountError(f"领导账号须对应辖区配置中的一位领导（{leader or '未填写'}）")
        unit = ""
    else:
        unit = leader = ""
    return Account(username, name, chosen, unit, leader)


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"密码须为 {MIN_PASSWORD}–{MAX_PASSWORD} 个字符")
    try:
        password.encode()
    except UnicodeEncodeError:  # bytes a terminal could not decode (read as lone surrogates): no one can type them
        raise AccountError("密码含有无效字符") from None
    return password


class AccountStore:
    """Accounts by username. Hashing runs in a worker thread: Argon2 is slow on purpose (tens of milliseconds and
    64 MiB a hash) and would stall the event loop."""

    def __init__(self, db: AsyncDatabase, hasher: PasswordHasher | None = None) -> None:
        self._accounts = db[ACCOUNTS]
        self._hasher = hasher or PasswordHasher()

    @cached_property
    def _decoy(self) -> str:
        """Verified against when the username is unknown, so a wrong username takes as long as a wrong password."""
        return self._hasher.hash("decoy password, never anyone's")

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, check_password(password))

    async def create(self, account: Account, password: str) -> Account:
        document = {"_id": account.username, "name": account.name, "role": str(account.role), "unit": account.unit,
                    "leader": account.leader, "disabled": False, "password_hash": await self._hash(password),
                    "created_at": datetime.now(UTC)}
        try:
            await self._accounts.insert_one(document)
        except DuplicateKeyError:
            raise AccountExists(f"用户名 {account.username} 已存在") from None
        return account

    async def get(self, username: str) -> Account | None:
        document = await self._accounts.find_one({"_id": username}, projection={"password_hash": 0})
        return Account.from_document(document) if document else None

    async def all(self) -> list[Account]:
        documents = await self._accounts.find({}, projection={"password_hash": 0}).to_list(None)
        return sorted((Account.from_document(document) for document in documents), key=lambda item: item.username)

    async def verify(self, username: str, password: str) -> Account | None:
        """The account if the password is its own (disabled or not: the caller tells those apart), else None."""
        document = await self._accounts.find_one({"_id": username}) if USERNAME.match(username) else None
        stored = document["password_hash"] if document else self._decoy
        try:
            await asyncio.to_thread(self._hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if document is None:
            return None
        if self._hasher.check_needs_rehash(stored):  # parameters raised since it was hashed
            await self._accounts.update_one({"_id": username}, {"$set": {"password_hash": await self._hash(password)}})
        return Account.from_document(document)

    async def set_password(self, username: str, password: str) -> bool:
        result = await self._accounts.update_one({"_id": username},
                                                 {"$set": {"password_hash": await self._hash(password),
                                                           "password_changed_at": datetime.now(UTC)}})
        return result.matched_count == 1

    async def set_disabled(self, username: str, disabled: bool) -> bool:
        result = await self._accounts.update_one({"_id": username}, {"$set": {"disabled": disabled}})
        return result.matched_count == 1
