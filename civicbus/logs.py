"""Structured logging (structlog) with personal data masked, and the masking rules themselves.

Handlers bind ``event_id`` and ``correlation_id`` with :func:`structlog.contextvars.bind_contextvars`, so every line
logged while an event is handled carries them.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# Mainland mobile numbers, landlines with area code, and 18-digit resident ID numbers (身份证号). A number glued to
# a Latin letter or digit is part of an identifier, not personal data: a work-order number such as
# SF202611250571234567 (date + hex digest, all digits about once in a hundred) must stay readable.
_EDGE_BEFORE, _EDGE_AFTER = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
_ID_NUMBER = re.compile(_EDGE_BEFORE + r"(\d{6})\d{8}(\d{3}[\dXx])" + _EDGE_AFTER)
_MOBILE = re.compile(_EDGE_BEFORE + r"(1[3-9]\d)\d{4}(\d{4})" + _EDGE_AFTER)
_LANDLINE = re.compile(_EDGE_BEFORE + r"(0\d{2,3}-?)\d{3,4}(\d{4})" + _EDGE_AFTER)


def mask_personal_data(text: str) -> str:
    """``13800001234`` → ``138****1234``; ID numbers keep their region and last four characters."""
    text = _ID_NUMBER.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    text = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)
    return _LANDLINE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)


def _mask_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = mask_personal_data(value)
    return event_dict


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
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,  # tests capture logs after services configured them
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The Kafka client's own chatter (rebalances, coordinator look-ups) only when something is wrong.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
