"""Who is asking: the workbench's parts for one reporting instance, the signed-in person (from the session
cookie), and the CSRF check every state-changing request authenticated by that cookie must pass.

The CSRF token is made at sign-in, kept with the session and given to the page (``/workbench/api/login`` and
``/me``); the page sends it back in ``X-CSRF-Token``. A cross-site form or script cannot read it, so a request that
rides on the cookie alone is refused (403) before anything is looked at. SameSite=Strict already keeps the cookie
off cross-site requests in today's browsers; the token is the second lock.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from civicbus.auth import Principal, Role
from civicbus.district import District
from civicbus.service import Runtime

from ..settings import ReportingSettings
from .accounts import Account, AccountStore, PersonRole, machine_role
from .attachments import Attachments, attachment_store
from .intake import IntakeClient
from .sessions import COOKIE, CSRF_HEADER, LoginThrottle, Session, SessionStore
from .tickets import Viewer


@dataclass
class Workbench:
    """The workbench's stores and its client of intake, one set per reporting instance (``app.state.workbench``)."""

    settings: ReportingSettings
    accounts: AccountStore
    sessions: SessionStore
    throttle: LoginThrottle
    attachments: Attachments
    intake: IntakeClient

    @classmethod
    def build(cls, runtime: Runtime) -> Workbench:
        settings: ReportingSettings = runtime.settings  # type: ignore[assignment]
        db = runtime.db
        return cls(settings, AccountStore(db), SessionStore(db, settings.session_hours), LoginThrottle(db),
                   Attachments(db, attachment_store(settings.attachments_store, db, settings.attachments_dir)),
                   IntakeClient(settings.intake_url, settings.workbench_key.get_secret_value()))

    async def start(self, _: Runtime) -> None:
        await self.sessions.ensure_indexes()
        await self.throttle.ensure_indexes()
        await self.attachments.ensure_indexes()

    async def stop(self, _: Runtime) -> None:
        await self.intake.close()


def workbench(request: Request) -> Workbench:
    return request.app.state.workbench


def district(request: Request) -> District:
    return request.app.state.runtime.district  # the configuration in force (reloaded without a restart)


@dataclass(frozen=True)
class Person:
    account: Account
    session: Session

    def viewer(self, district: District) -> Viewer:
        return Viewer.of(self.account, district)

    @property
    def principal(self) -> Principal:
        """The person as reporting's role rules know a key: what they may read unmasked follows from it."""
        role, unit = machine_role(self.account)
        return Principal(self.account.username, Role(role), unit)


async def current_person(request: Request) -> Person:
    store = workbench(request)
    session = await store.sessions.find(request.cookies.get(COOKIE, ""))
    if session is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="未登录或登录已过期，请重新登录")
    account = await store.accounts.get(session.username)
    if account is None or account.disabled:
        await store.sessions.close(session.id)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="账号已停用或不存在，请联系管理员")
    return Person(account, session)


async def acting_person(request: Request, person: Annotated[Person, Depends(current_person)]) -> Person:
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), person.session.csrf_token.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="缺少或错误的安全令牌（CSRF），请刷新页面后重试")
    return person


def _admin(person: Person) -> Person:
    if person.account.role is not PersonRole.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="只有管理员可以管理账号和密钥")
    return person


async def reading_admin(person: Annotated[Person, Depends(current_person)]) -> Person:
    return _admin(person)


async def acting_admin(person: Annotated[Person, Depends(acting_person)]) -> Person:
    return _admin(person)


CurrentPerson = Annotated[Person, Depends(current_person)]
"""Any signed-in person (reads)."""
ActingPerson = Annotated[Person, Depends(acting_person)]
"""A signed-in person whose request carries the session's CSRF token (every POST, PUT, DELETE)."""
ReadingAdmin = Annotated[Person, Depends(reading_admin)]
ActingAdmin = Annotated[Person, Depends(acting_admin)]
