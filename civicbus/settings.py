"""Settings of every service, from environment variables (pydantic-settings).

What every service shares (:class:`ServiceSettings`); each service's own class, with what it alone reads, lives
in the service (``services/<name>/settings.py``). Variables start with ``CIVICBUS_`` and nest with
``__`` (``CIVICBUS_HTTP__PORT=8081``). Two well-known names are accepted as they are: ``KAFKA_BOOTSTRAP_SERVERS``
and ``MONGO_URL`` — a ``MONGO_URL`` pointing at a real ``mongod``, Atlas or a replica set replaces the embedded
FerretDB with no code change.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AliasChoices, BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "config" / "sample"


class HttpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0: the service's default port")
    body_timeout_s: float = Field(default=10.0, gt=0, description="most seconds between parts of a request body "
                                  "(a body shorter than its Content-Length is answered 408, not waited for)")


class KafkaConsumerSettings(BaseModel):
    max_records: int = Field(default=500, ge=1, description="records per batch (consume in batches, write in bulk)")
    batch_timeout_ms: int = Field(default=50, ge=1, description="how long a batch waits to fill")
    retry_backoff_s: float = Field(default=1.0, gt=0, description="pause before a failed batch is read again; "
                                   "doubles with each failure in a row up to retry_backoff_max_s")
    retry_backoff_max_s: float = Field(default=30.0, gt=0)
    dlq_max_consecutive: int = Field(default=200, ge=1, description="dead letters in a row (no record processed in "
                                     "between) that stop the consumer instead of dead-lettering a whole topic")
    dlq_max_ratio: float = Field(default=0.8, gt=0, le=1, description="share of dead letters among the last "
                                 "dlq_ratio_window records that stops the consumer")
    dlq_ratio_window: int = Field(default=500, ge=10)
    lag_interval_s: float = Field(default=15.0, gt=0, description="how often consumer lag is measured")


class ServiceSettings(BaseSettings):
    """What every service needs: Kafka, MongoDB, HTTP, the domain configuration and logging."""

    model_config = SettingsConfigDict(
        env_prefix="CIVICBUS_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    service_name: ClassVar[str] = "civicbus"
    default_port: ClassVar[int] = 8080

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("CIVICBUS_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap"),
    )
    topic_prefix: str = Field(
        default="",
        pattern=r"^[A-Za-z0-9._-]*$",
        description="prepended to every topic name: isolates tests and staging environments on one cluster",
    )
    consumer: KafkaConsumerSettings = KafkaConsumerSettings()
    mongo_url: str = Field(
        default="mongodb://127.0.0.1:27017/",
        validation_alias=AliasChoices("CIVICBUS_MONGO_URL", "MONGO_URL", "mongo_url"),
    )
    mongo_db: str = Field(default="civicbus", pattern=r"^[A-Za-z0-9_-]{1,60}$")
    mongo_timeout_ms: int = Field(default=10_000, ge=100, description="longest a store operation may take, waiting "
                                  "for a connection included: a stuck store fails the batch instead of hanging it")
    mongo_max_pool: int = Field(default=8, ge=1, description="connections per process: every replica's pool adds "
                                "up against the store's own, and the embedded FerretDB wedges past it")
    key_throttle_refresh_s: float = Field(default=2.0, gt=0, description="how often each instance reads every "
                                          "instance's failed API key attempts (civicbus.auth.KeyThrottle): an "
                                          "address throttled on one replica is throttled on all within this time")
    config_dir: Path = DEFAULT_CONFIG_DIR
    http: HttpSettings = HttpSettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = Field(default=False, description="JSON log lines (for log shippers) instead of console lines")

    @field_validator("config_dir")
    @classmethod
    def _absolute(cls, folder: Path) -> Path:
        return folder if folder.is_absolute() else (Path.cwd() / folder).resolve()

    @property
    def http_port(self) -> int:
        return self.http.port or self.default_port
