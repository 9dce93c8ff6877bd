"""The one root of civicbus's errors, and the split every consumer acts on (see getsentry/arroyo):

- **transient** — the store or the broker is away or slow (connection lost, timeout, not primary, broker
  unavailable): nothing is wrong with the records, so the batch is read again after a backoff;
- **permanent** — anything a record's own data causes (a document the store refuses, a value out of range, a bug
  that one record triggers): that record is dead-lettered with the reason and the partition moves on.

:func:`is_transient` classifies any exception, ours or a library's, so no consumer keeps its own list.
:func:`validation_problems` words a schema's refusal the one way every door, consumer and file loader reports it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka.errors import (
    CorruptRecordException,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from pydantic import ValidationError
from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure, PyMongoError, WTimeoutError


class CivicbusError(Exception):
    """Root of the errors civicbus raises itself."""


class TransientError(CivicbusError):
    """Infrastructure away or too slow: retry later, the same input will then succeed."""


class PermanentError(CivicbusError):
    """The input itself cannot be processed: retrying it changes nothing."""


# Server error codes that mean "the server, not your document": shutting down, stepping down, unreachable, too slow.
_TRANSIENT_CODES = frozenset({6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` says the infrastructure failed (retry the batch) rather than the record (dead-letter it)."""
    if isinstance(error, TransientError):
        return True
    if isinstance(error, CivicbusError):
        return False
    if isinstance(error, PyMongoError):
        if isinstance(error, ConnectionFailure | ExecutionTimeout | WTimeoutError) or getattr(error, "timeout", False):
            return True
        if error.has_error_label("RetryableWriteError") or error.has_error_label("TransientTransactionError"):
            return True
        if isinstance(error, OperationFailure):
            return error.code in _TRANSIENT_CODES
        return False  # InvalidDocument, DocumentTooLarge, a BSON error: the record's own data
    if isinstance(error, KafkaError):
        # Only a record too large or malformed is the record's fault; the broker away, slow or electing is not.
        return not isinstance(error, MessageSizeTooLargeError | RecordTooLargeError | RecordListTooLargeError | CorruptRecordException)
    return isinstance(error, OSError | asyncio.TimeoutError | TimeoutError | ConnectionError)


def validation_problems(
    error: ValidationError, where: Callable[[tuple[int | str, ...]], str] | None = None
) -> list[str]:
    """Each problem of a refused input as ``"<where>: <what>"``: where is the field's dotted path (``data.content``),
    ``(record)`` for the input as a whole, or what ``where`` calls the path (a configuration file names its entry)."""
    return [
        f"{where(tuple(item['loc'])) if where else '.'.join(map(str, item['loc'])) or '(record)'}: {item['msg']}"
        for item in error.errors(include_url=False)
    ]
