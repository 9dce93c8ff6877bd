"""The kernel's schemas refuse at the door what a consumer could not store: keys MongoDB cannot take as field names,
dates outside 1970..2100, amounts that are NaN, infinite or negative, coordinates that are no place on earth —
whichever way a submission comes in, since every door validates with these schemas."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from civicbus.events import (
    SUBMISSION_ADAPTER,
    Action,
    Actor,
    Alarm,
    Complaint,
    ComplaintReceived,
    Inspection,
    Location,
    TicketCommand,
)

ALARM = {"content": "烟感报警", "device_id": "SMK-1", "alarm_type": "smoke"}
INSPECTION = {"content": "河道排污口有污水直排", "inspection_type": "生态环保"}


def _refusal(build, **fields) -> tuple[tuple, str]:
    with pytest.raises(ValidationError) as raised:
        build(**fields)
    [error] = raised.value.errors(include_url=False)
    return error["loc"], error["msg"]


@pytest.mark.parametrize("key", ["a.b", "$where", "", "   ", "nul\x00byte"])
@pytest.mark.parametrize("kind", ["complaint", "alarm", "inspection"])
def test_label_keys_a_store_cannot_take_are_refused_on_every_kind(kind, key):
    item = {"type": kind, **{"complaint": {"content": "x"}, "alarm": ALARM, "inspection": INSPECTION}[kind]}
    loc, message = _refusal(lambda **fields: SUBMISSION_ADAPTER.validate_python(fields),
                            **item, labels={"fine": "1", key: "2"})
    assert loc[-1] == "labels"
    assert repr(key.strip()) in message and "键" in message


def test_ordinary_label_keys_pass():
    labels = {"open311_service": "urban.roads", "紧急程度": "高", "with-dash_and digits 1": "x"}
    assert Complaint(content="x", labels=labels).labels == labels


@pytest.mark.parametrize("moment", ["1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "9999-01-01T00:00:00+08:00"])
def test_datetimes_outside_1970_to_2100_are_refused_wherever_a_sender_gives_one(moment):
    cases = [
        (Complaint, {"content": "x", "due_at": moment}, "due_at"),
        (Inspection, {**INSPECTION, "rectify_by": moment}, "rectify_by"),
        (ComplaintReceived, {"source": "12345", "occurred_at": moment, "data": {"content": "x"}}, "occurred_at"),
        (lambda **fields: SUBMISSION_ADAPTER.validate_python(fields), {"type": "alarm", **ALARM, "occurred_at": moment},
         "occurred_at"),
        (TicketCommand, {"source": "intake", "ticket_id": "SF1", "action": Action.request_extension,
                         "actor": Actor(name="劳动保障所", role="unit"), "extension_until": moment}, "extension_until"),
    ]
    for build, fields, field in cases:
        loc, message = _refusal(build, **fields)
        assert loc[-1] == field and "1970-01-01 至 2100-01-01" in message, (field, message)


def test_the_edges_of_the_range_are_accepted():
    assert Complaint(content="x", due_at="1970-01-01T00:00:00Z").due_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert Complaint(content="x", due_at="2099-12-31T23:59:59+00:00").due_at.year == 2099


@pytest.mark.parametrize("amount", [math.nan, math.inf, -math.inf, "NaN", "Infinity", -0.01])
def test_amounts_must_be_finite_and_not_negative(amount):
    loc, _ = _refusal(Complaint, content="x", amount=amount)
    assert loc == ("amount",)
    command = {"source": "intake", "ticket_id": "SF1", "action": Action.resolve, "actor": Actor(name="u", role="unit")}
    loc, _ = _refusal(TicketCommand, **command, amount_recovered=amount)
    assert loc == ("amount_recovered",)


def test_nan_is_named_as_such_not_as_a_bound():
    _, message = _refusal(Complaint, content="x", amount=math.nan)
    assert "有限数值" in message and "finite" in message
    assert Complaint(content="x", amount=0).amount == 0 and Complaint(content="x", amount=1200.5).amount == 1200.5


@pytest.mark.parametrize(("lat", "lon", "field"), [
    (math.nan, 120.0, "lat"), (30.0, math.inf, "lon"), (90.5, 120.0, "lat"), (30.0, -180.5, "lon"),
])
def test_coordinates_must_be_finite_and_on_earth(lat, lon, field):
    loc, _ = _refusal(Location, lat=lat, lon=lon)
    assert loc == (field,)
    loc, _ = _refusal(Alarm, **ALARM, location={"lat": lat, "lon": lon})
    assert loc == ("location", field)


def test_sensor_readings_must_be_finite_but_may_be_negative():
    assert Alarm(**ALARM, value=-12.5, threshold=-10).value == -12.5
    loc, _ = _refusal(Alarm, **ALARM, value=math.nan)
    assert loc == ("value",)
