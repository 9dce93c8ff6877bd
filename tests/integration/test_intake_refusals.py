"""Intake refuses at the door, with 422 naming the field, what a consumer could not store — so that 202 means "this
will become a ticket". One test per kind of refusal, through the single endpoints, the batch, upstream work orders
and ticket commands (the schemas themselves: tests/unit/test_events_storable.py)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def _fields(response) -> list[tuple[str, str]]:
    """(field, message) of each problem of a FastAPI 422 answer."""
    assert response.status_code == 422, response.text
    return [(str(error["loc"][-1]), error["msg"]) for error in response.json()["detail"]]


async def test_a_label_key_mongodb_cannot_store_is_refused(http, services):
    intake = services["intake"].base_url
    single = await http.post(f"{intake}/v1/complaints", json={"content": "路灯不亮", "labels": {"a.b": "1"}})
    [(field, message)] = _fields(single)
    assert field == "labels" and "'a.b'" in message and "键" in message
    batch = await http.post(f"{intake}/v1/events/batch", json=[
        {"type": "alarm", "content": "烟感", "device_id": "SMK-9", "alarm_type": "smoke", "labels": {"$gt": "1"}}])
    [result] = batch.json()["results"]
    assert result["status"] == "invalid" and result["errors"][0].startswith("alarm.labels: 键 '$gt'")


async def test_a_date_outside_1970_to_2100_is_refused(http, services):
    intake = services["intake"].base_url
    single = await http.post(f"{intake}/v1/complaints", json={"content": "噪音扰民", "occurred_at": "1900-01-01T08:00:00+08:00"})
    [(field, message)] = _fields(single)
    assert field == "occurred_at" and "1970-01-01 至 2100-01-01" in message
    order = {"gdbh": "ZJ-FAR-FUTURE", "sqnr": "工地扬尘", "blsx": "2200-01-01 00:00:00"}
    upstream = await http.post(f"{intake}/v1/upstream/hotline12345/work-orders", json=order)
    assert upstream.status_code == 422 and any(problem.startswith("due_at: 时间须在") for problem in upstream.json()["detail"])
    extension = await http.post(f"{intake}/v1/tickets/SF20261125AB12CD34EF/extension-requests",
                                json={"until": "2150-01-01T00:00:00+08:00"})
    [(field, message)] = _fields(extension)
    assert field == "until" and "2100-01-01" in message


async def test_an_amount_that_is_nan_infinite_or_negative_is_refused(http, services):
    intake = services["intake"].base_url
    headers = {"Content-Type": "application/json"}
    for amount in (b"NaN", b"Infinity", b"-5"):  # Python's JSON parser reads NaN and Infinity
        body = b'{"content": "\xe6\xac\xa0\xe8\x96\xaa", "amount": ' + amount + b"}"  # 欠薪
        [(field, _)] = _fields(await http.post(f"{intake}/v1/complaints", content=body, headers=headers))
        assert field == "amount", amount
    resolve = await http.post(f"{intake}/v1/tickets/SF20261125AB12CD34EF/resolve", headers=headers,
                              content=b'{"result": "\xe5\xb7\xb2\xe8\xa1\xa5\xe5\x8f\x91", "amount_recovered": NaN}')
    [(field, message)] = _fields(resolve)
    assert field == "amount_recovered" and "有限数值" in message


async def test_coordinates_that_are_no_place_on_earth_are_refused(http, services):
    intake = services["intake"].base_url
    alarm = b'{"content": "smoke", "device_id": "SMK-9", "alarm_type": "smoke", "location": {"lat": NaN, "lon": 120.1}}'
    [(field, message)] = _fields(await http.post(f"{intake}/v1/alarms", content=alarm,
                                                 headers={"Content-Type": "application/json"}))
    assert field == "lat" and "有限数值" in message
    inspection = {"content": "河道排污", "inspection_type": "生态环保", "location": {"lat": 30.8, "lon": 181}}
    [(field, _)] = _fields(await http.post(f"{intake}/v1/inspections", json=inspection))
    assert field == "lon"
