"""Structured logging (structlog) and standard-library logging, both with personal data masked by the one policy
in ``civicbus/privacy.py``: a library's log line (uvicorn's traceback of a failed request, which may quote the
request body) is as much a way out as our own.

Handlers bind ``event_id`` and ``correlation_id`` with :func:`structlog.contextvars.bind_contextvars`, so every line
logged while an event is handled carries them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from civicbus.privacy import mask_personal_data, mask_record


def _mask_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # Objects are logged as their text, which may hold personal data as much as a string does.
    return mask_record({key: value if isinstance(value, str | int | float | bool | dict | list | tuple | None)
                        else str(value) for key, value in event_dict.items()})


class MaskedLogRecord(logging.LogRecord):
    """A standard-library log record (uvicorn, aiokafka, pymongo, FastAPI …) with personal data masked in its
    message, its arguments (uvicorn's access log formats them itself) and its traceback — whatever formats it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.args, tuple):
            self.args = tuple(mask_personal_data(arg) if isinstance(arg, str) else arg for arg in self.args)
        elif isinstance(self.args, dict):
            self.args = mask_record(self.args)
        if self.exc_info and self.exc_info[1] is not None:
            self.exc_text = mask_personal_data(logging.Formatter().formatException(self.exc_info))
        if self.stack_info:
            self.stack_info = mask_personal_data(self.stack_info)

    def getMessage(self) -> str:
        return mask_personal_data(super().getMessage())


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured: a stream swapped in for a
    while (a test runner's capture, a CLI runner) and closed since must not take every later line down with it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),
        cache_logger_on_first_use=False,  # tests capture logs after services configured them
    )
    logging.setLogRecordFactory(MaskedLogRecord)
    logging.basicConfig(level=level, stream=_CurrentStderr(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The Kafka client's own chatter (rebalances, coordinator look-ups) only when something is wrong.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
