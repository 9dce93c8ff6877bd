"""What every command line of civicbus prints through (``civicbus …`` and the services' own sub-commands): one
console for results, one for errors, and :func:`fail` — the message in red on standard error, exit status 1."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

# Wide enough for tables when the output is a file or a CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """Say what went wrong (as text: brackets in it are not markup) and stop with exit status 1."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(1)
