"""Event schemas: envelope, keys, validation, the registry's examples."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from civicbus.events import INCOMING_ADAPTER, Alarm, AlarmRaised, Complaint, ComplaintReceived, derived_event_id
from civicbus.topics import ALL_TOPICS


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=lambda topic: topic.name)
def test_every_example_round_trips_through_its_topic_codec(topic):
    assert topic.examples
    for example in topic.examples:
        assert type(example) in topic.schemas
        assert topic.adapter.validate_json(example.encode()) == example


def test_envelope_defaults_and_correlation():
    event = ComplaintReceived(source="12345", data=Complaint(content="噪音扰民"))
    assert event.kind == "complaint.received" and event.schema_version == 1
    assert event.correlation_id == event.event_id
    assert event.recorded_at.tzinfo is not None


def test_alarm_key_is_its_fingerprint_so_a_storm_stays_on_one_partition():
    first = AlarmRaised(source="iot", data=Alarm(content="烟感", device_id="S1", alarm_type="smoke"))
    second = AlarmRaised(source="iot", data=Alarm(content="烟感", device_id="S1", alarm_type="smoke"))
    assert first.event_id != second.event_id
    assert first.partition_key == second.partition_key == "S1:smoke"


def test_chinese_text_survives_encoding_unescaped():
    event = ComplaintReceived(source="12345", data=Complaint(content="飞线充电"))
    assert "飞线充电".encode() in event.encode()


def test_decoding_rejects_unknown_kinds_fields_and_missing_content():
    good = ComplaintReceived(source="12345", data=Complaint(content="x")).model_dump(mode="json")
    for broken in (
        {**good, "kind": "complaint.unknown"},
        {**good, "surprise": 1},
        {**good, "data": {"content": ""}},
        {**good, "schema_version": 2},
        {**good, "occurred_at": "2026-11-25T10:00:00"},  # no time zone
    ):
        with pytest.raises(ValidationError):
            INCOMING_ADAPTER.validate_python(broken)


def test_derived_ids_are_stable_and_distinct():
    assert derived_event_id("a", "b") == derived_event_id("a", "b")
    assert derived_event_id("a", "b") != derived_event_id("ab", "")
