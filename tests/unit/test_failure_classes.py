"""Transient failures retry the batch, the rest dead-letter the record; the DLQ limit stops a consumer that would
dead-letter everything."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from bson.errors import InvalidDocument
from pymongo.errors import AutoReconnect, NetworkTimeout, NotPrimaryError, OperationFailure, ServerSelectionTimeoutError

from civicbus.errors import PermanentError, TransientError, is_transient
from civicbus.kafka import DlqLimit


@pytest.mark.parametrize("error", [
    AutoReconnect("connection lost"), NetworkTimeout("timed out"), ServerSelectionTimeoutError("no server"),
    NotPrimaryError("stepped down"), OperationFailure("shutting down", code=91), KafkaConnectionError(),
    KafkaTimeoutError(), asyncio.TimeoutError(), ConnectionRefusedError(), TransientError("DLQ limit"),
])
def test_the_infrastructure_away_or_slow_is_transient(error: BaseException):
    assert is_transient(error)


@pytest.mark.parametrize("error", [
    OperationFailure("invalid key $where", code=2), InvalidDocument("cannot encode"), MessageSizeTooLargeError(),
    KeyError("field"), ValueError("out of range"), PermanentError("bad record"),
])
def test_what_a_record_causes_is_permanent(error: BaseException):
    assert not is_transient(error)


def test_the_limit_counts_dead_letters_in_a_row_and_a_processed_record_resets_it():
    limit = DlqLimit(max_consecutive=5, max_ratio=1.0, window=1000)
    limit.record(3, 3)
    assert limit.exceeded_by(1, 1) == ""
    assert limit.exceeded_by(2, 2) == "5 dead letters in a row"
    limit.record(4, 1)  # some records were processed: the run is broken
    assert limit.exceeded_by(3, 3) == ""


def test_the_limit_watches_the_share_of_the_last_records():
    limit = DlqLimit(max_consecutive=10_000, max_ratio=0.5, window=100)
    for _ in range(9):
        limit.record(10, 4)
    assert limit.exceeded_by(10, 4) == "", "40 % dead letters is under the ratio"
    assert limit.exceeded_by(10, 10) == ""  # 46 of 100
    for _ in range(9):
        limit.record(10, 6)
    assert "of the last" in limit.exceeded_by(10, 6)
