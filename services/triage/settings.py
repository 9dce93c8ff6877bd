"""The triage service's settings: the shared ones and what triage alone reads (``CIVICBUS_`` variables)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from civicbus.settings import ServiceSettings


class TriageSettings(ServiceSettings):
    service_name: ClassVar[str] = "triage"
    default_port: ClassVar[int] = 8082

    overdue_sweep_s: float = Field(default=15.0, gt=0, description="how often missed deadlines are looked for")
