"""The reporting service's settings: the shared ones and what reporting alone reads (``CIVICBUS_`` variables)."""

from __future__ import annotations

from typing import ClassVar

from civicbus.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    service_name: ClassVar[str] = "reporting"
    default_port: ClassVar[int] = 8084
