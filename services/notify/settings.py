"""The notify service's settings: the shared ones and what notify alone reads (``CIVICBUS_`` variables)."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, field_validator

from civicbus.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    service_name: ClassVar[str] = "notify"
    default_port: ClassVar[int] = 8083

    webhook_timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=4, ge=1, description="delivery attempts before a notification fails")
    retry_base_s: float = Field(default=30.0, gt=0, description="delay before the second attempt (a timer); doubles "
                                "per attempt up to retry_max_s, with jitter")
    concurrency: int = Field(default=50, ge=1, description="deliveries in flight at once")
    timer_tick_s: float = Field(default=15.0, gt=0, description="how often reminders, escalations, digests are due")
    retry_max_s: float = Field(default=600.0, gt=0, description="longest delay between two delivery attempts")
    public_base_url: str = Field(default="http://127.0.0.1:8084", description="where people reach the workbench "
                                 "(reporting): every message links to {public_base_url}/workbench/tickets/{id}")

    @field_validator("public_base_url")
    @classmethod
    def _http_base(cls, url: str) -> str:
        # A link people tap on a phone: http(s) only, and no trailing slash to double when paths are added.
        if not re.match(r"^https?://[^\s/]+(/\S*)?$", url):
            raise ValueError(f"public_base_url must be an http(s) URL, not {url!r}")
        return url.rstrip("/")
