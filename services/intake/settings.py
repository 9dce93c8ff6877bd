"""The intake service's settings: the shared ones and what intake alone reads (``CIVICBUS_`` variables)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from civicbus.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    service_name: ClassVar[str] = "intake"
    default_port: ClassVar[int] = 8081

    max_request_bytes: int = Field(default=1_000_000, ge=1024, description="largest accepted request body")
    command_wait_s: float = Field(default=5.0, ge=0, description="how long a command request waits for triage")
    publish_timeout_s: float = Field(default=5.0, gt=0, description="longest a request waits for Kafka's "
                                     "acknowledgement before it is answered 503 (retry with the same key)")
