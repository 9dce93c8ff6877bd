"""The reporting service's settings: the shared ones and what reporting alone reads (``CIVICBUS_`` variables)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from civicbus.settings import PROJECT_ROOT, ServiceSettings


class ReportingSettings(ServiceSettings):
    service_name: ClassVar[str] = "reporting"
    default_port: ClassVar[int] = 8084

    # The workbench (工单处置工作台): its commands go to intake's command API, never around it.
    intake_url: str = Field(default="http://127.0.0.1:8081", description="intake's base URL, for ticket commands")
    workbench_key: SecretStr = Field(default=SecretStr(""), description="an intake API key of role workbench; "
                                     "empty: the workbench shows tickets but answers every action 503")
    public_base_url: str = Field(default="http://127.0.0.1:8084", description="where people reach this service: "
                                 "the base of attachment links put in commands")
    session_hours: float = Field(default=12, gt=0, le=24 * 31, description="a sign-in lasts this long")
    secure_cookies: bool = Field(default=False, description="Secure session cookies: true wherever HTTPS is served")
    # GridFS works on the embedded FerretDB v1 but reads a file's chunks by scanning every chunk stored (measured:
    # 0.06 s for a 1 MB photo with 1 MB stored, 1.8 s with 80 MB): the filesystem is the default; choose gridfs
    # with a real MongoDB, whose (files_id, n) index serves the read.
    attachments_store: Literal["gridfs", "filesystem"] = "filesystem"
    attachments_dir: Path = Field(default=PROJECT_ROOT / ".civicbus" / "attachments",
                                  description="for the filesystem store; shared by every replica (a volume)")
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="largest upload accepted")
