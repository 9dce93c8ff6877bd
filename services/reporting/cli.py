"""``civicbus reporting …``: rebuild the read models from the topics, print the figures of a period."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Annotated, Optional

import typer
from rich.table import Table

from civicbus.terminal import console, fail

reporting_app = typer.Typer(help="Reporting's read models and figures (统计报表).", no_args_is_help=True)


@reporting_app.command("rebuild")
def rebuild_command() -> None:
    """Drop the read models and replay civic.tickets and civic.notifications from the beginning (stop the reporting
    service first). Settings from CIVICBUS_* environment variables, as for `civicbus run reporting`."""
    from civicbus.district import load_district
    from civicbus.mongo import create_mongo, database
    from .settings import ReportingSettings

    from .rebuild import rebuild

    settings = ReportingSettings()
    district = load_district(settings.config_dir)

    async def run() -> None:
        client = create_mongo(settings)
        try:
            result = await rebuild(settings, database(client, settings), district.timezone)
        finally:
            await client.close()
        for topic, read in result.read.items():
            console.print(f"[green]✓[/] {topic}: {read} records replayed, {result.undecodable[topic]} undecodable")

    asyncio.run(run())


@reporting_app.command("summary")
def summary_command(
    period: Annotated[str, typer.Option(help="day | week | month | quarter")] = "week",
    at: Annotated[Optional[str], typer.Option(help="a day inside the period, YYYY-MM-DD")] = None,
) -> None:
    """Print the district's figures for a period (the same as GET /v1/summary)."""
    from civicbus.district import load_district
    from civicbus.mongo import create_mongo, database
    from .settings import ReportingSettings

    from .config import load_reporting_config
    from .exports import format_value
    from .report import Reports

    settings = ReportingSettings()
    district = load_district(settings.config_dir)

    async def run() -> dict:
        client = create_mongo(settings)
        try:
            reports = Reports(database(client, settings), district, load_reporting_config(settings.config_dir))
            chosen = reports.period(period, date.fromisoformat(at) if at else None)  # type: ignore[arg-type]
            return await reports.summary(chosen)
        finally:
            await client.close()

    try:
        body = asyncio.run(run())
    except ValueError as error:  # a bad date, or a ReportError (a period the reports cannot answer)
        fail(str(error))
    table = Table("指标", "figure", "本期", "上期", "变化", title=f"{district.name} {body['period']['label']}")
    for figure in body["figures"]:
        table.add_row(figure["name"], figure["code"], *(format_value(figure[name], figure["unit"])
                                                       for name in ("value", "previous", "change")))
    console.print(table)


