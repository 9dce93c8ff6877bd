"""``civicbus workbench …``: the first admin of the workbench, and accounts made from the command line (settings
from CIVICBUS_* environment variables, as for ``civicbus run reporting``)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from civicbus.terminal import console, fail

from .accounts import ROLE_NAMES, Account, AccountError, PersonRole

workbench_app = typer.Typer(help="The workbench's accounts (工单处置工作台账号).", no_args_is_help=True)

PasswordFromStdin = Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input "
                                                 "(first line) instead of prompting")]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("密码 (password)", hide_input=True, confirmation_prompt=True)


def _add(username: str, name: str, role: str, unit: str, leader: str, password: str) -> Account:
    from civicbus.district import load_district
    from civicbus.mongo import create_mongo, database

    from ..settings import ReportingSettings
    from .accounts import AccountStore, checked_account, check_password

    settings = ReportingSettings()
    account = checked_account(load_district(settings.config_dir), username, name, role, unit, leader)
    check_password(password)

    async def create() -> Account:
        client = create_mongo(settings)
        try:
            return await AccountStore(database(client, settings)).create(account, password)
        finally:
            await client.close()

    return asyncio.run(create())


def _created(username: str, name: str, role: str, unit: str, leader: str, password: str) -> None:
    try:
        account = _add(username, name, role, unit, leader, password)
    except AccountError as error:
        fail(str(error))
    where = account.unit or account.leader
    console.print(f"[green]✓[/] {ROLE_NAMES[account.role]} {account.name} ({account.username})"
                  f"{f' · {where}' if where else ''}: 请在 /workbench 登录 (sign in at /workbench)")


@workbench_app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(help="ASCII: lower-case letters, digits, . _ -")],
    name: Annotated[str, typer.Option(help="the name shown (姓名)")],
    password_stdin: PasswordFromStdin = False,
) -> None:
    """Create an admin account (管理员): it creates the other accounts in the workbench."""
    _created(username, name, str(PersonRole.admin), "", "", _password(password_stdin))


@workbench_app.command("add-account")
def add_account(
    username: Annotated[str, typer.Option(help="ASCII: lower-case letters, digits, . _ -")],
    name: Annotated[str, typer.Option(help="the name shown (姓名)")],
    role: Annotated[str, typer.Option(help=" | ".join(f"{role} ({ROLE_NAMES[role]})" for role in PersonRole))],
    unit: Annotated[str, typer.Option(help="staff: the unit id (dispatcher/callback: the dispatcher unit)")] = "",
    leader: Annotated[str, typer.Option(help="leader: the leader id of district.yaml")] = "",
    password_stdin: PasswordFromStdin = False,
) -> None:
    """Create an account of any role (新建账号)."""
    _created(username, name, role, unit, leader, _password(password_stdin))
