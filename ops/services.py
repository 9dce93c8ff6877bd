"""The four services, by name: each one's settings class and application factory, for ``civicbus run``, the demo,
the AsyncAPI export and the tests. Imported lazily, so that the CLI starts without loading every service."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from fastapi import FastAPI

from civicbus.settings import ServiceSettings


class ServiceEntry(NamedTuple):
    settings: type[ServiceSettings]
    create_app: Callable[..., FastAPI]


def _intake() -> ServiceEntry:
    from services.intake.app import create_app
    from services.intake.settings import IntakeSettings
    return ServiceEntry(IntakeSettings, create_app)


def _triage() -> ServiceEntry:
    from services.triage.app import create_app
    from services.triage.settings import TriageSettings
    return ServiceEntry(TriageSettings, create_app)


def _notify() -> ServiceEntry:
    from services.notify.app import create_app
    from services.notify.settings import NotifySettings
    return ServiceEntry(NotifySettings, create_app)


def _reporting() -> ServiceEntry:
    from services.reporting.app import create_app
    from services.reporting.settings import ReportingSettings
    return ServiceEntry(ReportingSettings, create_app)


_ENTRIES: dict[str, Callable[[], ServiceEntry]] = {
    "intake": _intake, "triage": _triage, "notify": _notify, "reporting": _reporting}
SERVICES = tuple(_ENTRIES)


def service_entry(name: str) -> ServiceEntry:
    return _ENTRIES[name]()


def build_service(name: str, settings: ServiceSettings | None = None) -> FastAPI:
    """The application of service ``name``, with its settings from the environment unless given."""
    entry = service_entry(name)
    return entry.create_app(settings or entry.settings())
