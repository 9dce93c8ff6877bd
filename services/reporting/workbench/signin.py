"""Signing in and out, who am I, changing one's password (``/workbench/api/login|logout|me|password``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from civicbus.district import District

from .accounts import MAX_PASSWORD, MIN_PASSWORD, ROLE_NAMES, USERNAME, Account, AccountError, check_password
from .people import ActingPerson, CurrentPerson, Workbench, district, workbench
from .sessions import COOKIE, wait_text

router = APIRouter(prefix="/workbench/api", tags=["workbench (工单处置工作台)"])
WRONG = "用户名或密码错误"  # the same for an unknown user and a wrong password: neither is confirmed


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class PasswordBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current: str = Field(min_length=1, max_length=MAX_PASSWORD)
    new: str = Field(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)


def person_json(account: Account, where: District, csrf_token: str) -> dict[str, Any]:
    unit = where.units.get(account.unit)
    leader = where.leaders.get(account.leader)
    return {"username": account.username, "name": account.name, "role": str(account.role),
            "role_name": ROLE_NAMES[account.role], "unit": account.unit, "unit_name": unit.name if unit else "",
            "leader": account.leader, "leader_name": f"{leader.name}（{leader.title}）" if leader else "",
            "csrf_token": csrf_token}


def _too_many(seconds: int) -> HTTPException:
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=wait_text(seconds),
                         headers={"Retry-After": str(seconds)})


def _normal(username: str) -> str:
    return username.strip().lower()


@router.post("/login", summary="Sign in (登录): sets the session cookie, answers the person and the CSRF token")
async def login(body: LoginBody, request: Request) -> JSONResponse:
    store = workbench(request)
    username = _normal(body.username)
    if not USERNAME.match(username):  # no one's: answered as a wrong password, neither stored nor counted
        await store.accounts.verify(username, body.password)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=WRONG)
    wait = await store.throttle.wait(username)
    if wait:  # before the password is even looked at: while throttled, the right one gets in no more than a guess
        raise _too_many(wait)
    account = await store.accounts.verify(username, body.password)
    if account is None:
        await store.throttle.failed(username)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=WRONG)
    if account.disabled:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="账号已停用")
    await store.throttle.succeeded(username)
    token, session = await store.sessions.open(username)
    person = person_json(account, district(request), session.csrf_token)
    response = JSONResponse({"person": person, "csrf_token": session.csrf_token},
                            headers={"Cache-Control": "no-store"})
    _set_cookie(response, store, token)
    return response


def _set_cookie(response: Response, store: Workbench, token: str) -> None:
    response.set_cookie(COOKIE, token, max_age=int(store.sessions.lifetime.total_seconds()), path="/",
                        httponly=True, samesite="strict", secure=store.settings.secure_cookies)


@router.post("/logout", status_code=204, summary="Sign out (退出): ends the session")
async def logout(request: Request, person: ActingPerson) -> Response:
    store = workbench(request)
    await store.sessions.close(person.session.id)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=store.settings.secure_cookies)
    return response


@router.get("/me", summary="The signed-in person (当前用户), with the CSRF token for the page")
async def me(request: Request, person: CurrentPerson) -> JSONResponse:
    return JSONResponse(person_json(person.account, district(request), person.session.csrf_token),
                        headers={"Cache-Control": "no-store"})


@router.post("/password", status_code=204, summary="Change one's own password (修改密码); other sessions end")
async def change_password(body: PasswordBody, request: Request, person: ActingPerson) -> Response:
    store = workbench(request)
    username = person.account.username
    wait = await store.throttle.wait(username)  # a borrowed session must not guess the password either
    if wait:
        raise _too_many(wait)
    if await store.accounts.verify(username, body.current) is None:
        await store.throttle.failed(username)
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="当前密码不正确")
    try:
        await store.accounts.set_password(username, check_password(body.new))
    except AccountError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(error)) from None
    await store.sessions.close_all(username, keep=person.session.id)
    return Response(status_code=204)
