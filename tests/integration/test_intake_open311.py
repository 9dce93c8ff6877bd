"""Open311 GeoReport v2 against the spec's element names and formats (XML and JSON), through the real broker: a
request posted form-encoded becomes a routed ticket, and GET requests follows that ticket to closed."""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime, timedelta
from xml.etree import ElementTree

import httpx
import pytest

from civicbus.auth import Role, create_key
from civicbus.settings import DEFAULT_CONFIG_DIR

from .conftest import eventually, start_service

pytestmark = pytest.mark.integration

SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
ATTRIBUTE_FIELDS = ["variable", "code", "datatype", "required", "datatype_description", "order", "description", "values"]
REQUEST_FIELDS = ["service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"]


@pytest.fixture(scope="module")
async def keys(mongo) -> dict[str, str]:
    return {"app": await create_key(mongo, "随手拍 app", Role.system),
            "jianshe": await create_key(mongo, "建设管理办公室 赵六", Role.unit, "jianshe")}


def _xml(response) -> ElementTree.Element:
    assert response.headers["content-type"].startswith("text/xml"), response.headers["content-type"]
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ElementTree.fromstring(response.content)


def _iso_with_offset(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(hours=8), text
    return moment


async def test_discovery_services_and_definitions_follow_the_spec(http, services):
    base = f"{services['intake'].base_url}/open311/v2"
    async with httpx.AsyncClient() as anonymous:  # Open311 reads need no key
        discovery = _xml(await anonymous.get(f"{base}/discovery.xml"))
        assert discovery.tag == "discovery"
        endpoint = discovery.find("endpoints/endpoint")
        assert endpoint.findtext("specification") == "http://wiki.open311.org/GeoReport_v2"
        assert endpoint.findtext("url").endswith("/open311/v2")
        assert {node.text for node in endpoint.findall("formats/format")} == {"text/xml", "application/json"}
        _iso_with_offset(discovery.findtext("changeset"))

        listing = _xml(await anonymous.get(f"{base}/services.xml"))
        assert listing.tag == "services"
        roads = next(node for node in listing.findall("service") if node.findtext("service_code") == "urban.roads")
        assert [child.tag for child in roads] == SERVICE_FIELDS
        assert (roads.findtext("service_name"), roads.findtext("group")) == ("道路设施", "城市管理")
        assert (roads.findtext("metadata"), roads.findtext("type")) == ("true", "realtime")
        assert "路灯" in roads.findtext("keywords").split(",")
        codes = {node.findtext("service_code") for node in listing.findall("service")}
        assert "labor.wage_arrears" in codes and not any(code.startswith(("petition", "police")) for code in codes)

        as_json = (await anonymous.get(f"{base}/services.json")).json()
        assert [list(item) for item in as_json][0] == SERVICE_FIELDS and len(as_json) == len(codes)

        definition = _xml(await anonymous.get(f"{base}/services/urban.roads.xml"))
        assert definition.tag == "service_definition" and definition.findtext("service_code") == "urban.roads"
        (attribute,) = definition.findall("attributes/attribute")
        assert [child.tag for child in attribute] == ATTRIBUTE_FIELDS
        assert (attribute.findtext("code"), attribute.findtext("datatype"), attribute.findtext("required"),
                attribute.findtext("order")) == ("FACILITY", "singlevaluelist", "true", "1")
        assert [(value.findtext("key"), value.findtext("name")) for value in attribute.findall("values/value")][0] == (
            "streetlight", "路灯")
        wage = (await anonymous.get(f"{base}/services/labor.wage_arrears.json")).json()
        assert wage["attributes"][0]["datatype"] == "number" and wage["attributes"][0]["values"] == []

        missing = await anonymous.get(f"{base}/services/nothing.here.xml")
        assert missing.status_code == 404
        error = _xml(missing).find("error")
        assert error.findtext("code") == "404" and "service" in error.findtext("description")
        wrong_place = await anonymous.get(f"{base}/services.json", params={"jurisdiction_id": "elsewhere.gov"})
        assert wrong_place.status_code == 404 and wrong_place.json()[0]["code"] == 404


async def test_a_service_added_to_the_catalogue_is_offered_without_restarting_intake(stack, tmp_path):
    folder = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, folder, ignore=shutil.ignore_patterns("training"))
    intake = await start_service(stack, "intake", config_dir=folder)
    base = f"{intake.base_url}/open311/v2"
    catalogue = folder / "open311.yaml"

    async def offered() -> set[str]:
        async with httpx.AsyncClient() as anonymous:
            response = await anonymous.get(f"{base}/services.json")
        return {service["service_code"] for service in response.json()} if response.status_code == 200 else set()

    try:
        assert "police.dispute" not in await offered()
        catalogue.write_text(catalogue.read_text(encoding="utf-8").replace("hidden: [petition, police]",
                                                                           "hidden: [petition]"), encoding="utf-8")

        async def police_offered() -> bool:
            return "police.dispute" in await offered()

        await eventually(police_offered, timeout=20, what="police.dispute offered after the reload")
        async with httpx.AsyncClient() as anonymous:
            definition = await anonymous.get(f"{base}/services/police.dispute.json")
        assert definition.status_code == 200 and definition.json()["service_code"] == "police.dispute"

        catalogue.unlink()  # Open311 off: every resource is the spec's 404
        async with httpx.AsyncClient() as anonymous:
            async def off() -> bool:
                return (await anonymous.get(f"{base}/services.xml")).status_code == 404

            await eventually(off, timeout=20, what="Open311 turned off")
            assert "未开通 Open311" in _xml(await anonymous.get(f"{base}/discovery.xml")).findtext("error/description")
    finally:
        await intake.stop()


async def test_a_posted_request_is_routed_and_followed_to_closed(http, services, mongo, keys):
    base = f"{services['intake'].base_url}/open311/v2"
    marker = uuid.uuid4().hex[:6]
    form = {
        "api_key": keys["app"], "service_code": "urban.roads", "lat": "30.8650", "long": "120.0600",
        "address_string": "湖滨路12号", "attribute[FACILITY]": "streetlight", "first_name": "明", "last_name": "王",
        "phone": "13912345678", "email": "wang@example.com", "media_url": "https://img.example.com/a.jpg",
        "description": f"路灯不亮一周了，晚上很黑 {marker}，有事打我电话13912345678",
    }
    async with httpx.AsyncClient() as anonymous:
        refused = await anonymous.post(f"{base}/requests.json", data={**form, "api_key": "cbk_wrong"})
        assert refused.status_code == 403 and refused.json()[0]["code"] == 403
        no_answer = await anonymous.post(f"{base}/requests.xml", data={**form, "attribute[FACILITY]": "tree"})
        assert no_answer.status_code == 400 and "FACILITY" in _xml(no_answer).findtext("error/description")
        nowhere = {key: value for key, value in form.items() if key not in ("lat", "long", "address_string")}
        assert (await anonymous.post(f"{base}/requests.json", data=nowhere)).status_code == 400
        unknown = await anonymous.post(f"{base}/requests.json", data={**form, "service_code": "no.such"})
        assert unknown.status_code == 400 and "service_code" in unknown.json()[0]["description"]
        too_long = await anonymous.post(f"{base}/requests.json", data={**form, "description": "长" * 6000})
        assert too_long.status_code == 400 and too_long.json()[0]["description"].startswith("description")

        posted = await anonymous.post(f"{base}/requests.xml", data=form)
        assert posted.status_code == 201, posted.text
        answer = _xml(posted)
        assert answer.tag == "service_requests"
        request_id = answer.findtext("request/service_request_id")
        assert request_id

    ticket = await eventually(lambda: mongo["tickets"].find_one({"source_event_id": request_id}), what="the ticket")
    assert ticket["category"] == "urban.roads" and ticket["explanation"]["category"]["method"] == "upstream_code"
    assert ticket["lead_unit"] == "jianshe" and ticket["area"] == "hubin"
    assert ticket["caller_phone"] == "13912345678", "the unit that calls back (回访) needs the number"

    async def followed() -> dict | None:
        (item,) = (await http.get(f"{base}/requests/{request_id}.json")).json()
        return item if item["service_notice"] else None

    item = await eventually(followed, what="the request following its ticket")
    assert list(item) == REQUEST_FIELDS
    assert (item["status"], item["agency_responsible"], item["service_code"]) == ("open", "建设管理办公室", "urban.roads")
    assert item["service_notice"] == f"工单号 {ticket['ticket_id']}"
    assert _iso_with_offset(item["expected_datetime"]) == ticket["resolve_due"].replace(microsecond=0)
    _iso_with_offset(item["requested_datetime"])
    assert (item["lat"], item["long"], item["address"]) == (30.865, 120.06, "湖滨路12号")
    assert "139****5678" in item["description"]

    listing = await http.get(f"{base}/requests.xml", params={"service_request_id": f"{request_id},unknown-id"})
    (request,) = _xml(listing).findall("request")
    assert [child.tag for child in request] == REQUEST_FIELDS
    assert request.findtext("status") == "open" and request.findtext("agency_responsible") == "建设管理办公室"
    public = listing.text + (await http.get(f"{base}/requests.json", params={"service_code": "urban.roads"})).text
    for personal in ("13912345678", "wang@example.com", "王明"):
        assert personal not in public, f"{personal} must never be exposed"

    def ids(response) -> list[str]:
        return [entry["service_request_id"] for entry in response.json()]

    soon = (datetime.now().astimezone() + timedelta(minutes=1)).isoformat(timespec="seconds")
    hour_ago = (datetime.now().astimezone() - timedelta(hours=1)).isoformat(timespec="seconds")
    found = await http.get(f"{base}/requests.json", params={"service_code": "urban.roads,urban.stall",
                                                             "status": "open", "start_date": hour_ago})
    assert request_id in ids(found)
    assert request_id not in ids(await http.get(f"{base}/requests.json", params={"status": "closed"}))
    assert ids(await http.get(f"{base}/requests.json", params={"end_date": hour_ago, "service_code": "urban.roads"})) == []
    paged = await http.get(f"{base}/requests.json", params={"page_size": 1, "end_date": soon})
    assert len(ids(paged)) == 1
    bad_date = await http.get(f"{base}/requests.json", params={"start_date": "yesterday"})
    assert bad_date.status_code == 400 and "start_date" in bad_date.json()[0]["description"]
    (token,) = (await http.get(f"{base}/tokens/{request_id}.json")).json()
    assert token == {"service_request_id": request_id, "token": request_id}
    assert (await http.get(f"{base}/requests/unknown-id.xml")).status_code == 404

    # The unit signs for and resolves the ticket: the request is closed, with the result as its status notes.
    unit = {"X-API-Key": keys["jianshe"]}
    intake = services["intake"].base_url
    assert (await http.post(f"{intake}/v1/tickets/{ticket['ticket_id']}/sign-for", json={}, headers=unit)).status_code == 200
    resolved = await http.post(f"{intake}/v1/tickets/{ticket['ticket_id']}/resolve", json={"result": "已更换灯泡"},
                               headers=unit)
    assert resolved.status_code == 200, resolved.text

    async def closed() -> dict | None:
        (entry,) = (await http.get(f"{base}/requests/{request_id}.json")).json()
        return entry if entry["status"] == "closed" else None

    entry = await eventually(closed, what="the request closed after 办结")
    assert "已更换灯泡" in entry["status_notes"]
    assert request_id in ids(await http.get(f"{base}/requests.json", params={"status": "closed"}))

    # FixMyStreet's servicerequestupdates extension: one update per transition the citizen hears of.
    updates = _xml(await http.get(f"{base}/servicerequestupdates.xml", params={"start_date": hour_ago}))
    assert updates.tag == "service_requests_updates"
    mine = [node for node in updates.findall("request_update") if node.findtext("service_request_id") == request_id]
    assert [child.tag for child in mine[0]] == ["update_id", "service_request_id", "status", "updated_datetime",
                                                "description", "media_url"]
    assert [node.findtext("status") for node in mine] == ["open", "in_progress", "fixed"]
    assert "已更换灯泡" in mine[-1].findtext("description")
    assert len({node.findtext("update_id") for node in mine}) == 3


async def test_strict_validators_and_clients_get_what_the_spec_says(http, services, keys):
    """What open311/schema-validation and Open311 clients expect: no photo is null (never ""), a description longer
    than the spec's 4,000 characters and a non-http(s) media_url are refused, a character XML forbids never reaches
    the public feed, and what civicbus does not serve is answered in the spec's error format."""
    base = f"{services['intake'].base_url}/open311/v2"
    form = {"api_key": keys["app"], "service_code": "urban.roads", "address_string": "湖滨路8号",
            "attribute[FACILITY]": "streetlight", "description": f"路灯\x01不亮 {uuid.uuid4().hex[:6]}"}
    async with httpx.AsyncClient() as anonymous:
        for bad in ({"description": "长" * 4001}, {"media_url": "javascript:alert(1)"},
                    {"media_url": "ftp://example.com/a.jpg"}):
            refused = await anonymous.post(f"{base}/requests.json", data={**form, **bad})
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.json()[0]["code"] == 400
        posted = await anonymous.post(f"{base}/requests.json", data=form)
        assert posted.status_code == 201, posted.text
        request_id = posted.json()[0]["service_request_id"]
        (item,) = (await anonymous.get(f"{base}/requests/{request_id}.json")).json()
        assert item["media_url"] is None
        feed = await anonymous.get(f"{base}/requests/{request_id}.xml")
        assert "路灯不亮" in _xml(feed).findtext("request/description"), "well-formed, the control character dropped"

        unserved = await anonymous.post(f"{base}/servicerequestupdates.xml", data={"api_key": keys["app"]})
        assert unserved.status_code == 405 and _xml(unserved).tag == "errors"
        unknown = await anonymous.get(f"{base}/no-such-resource.json")
        assert unknown.status_code == 404 and unknown.json()[0]["code"] == 404


async def test_following_tickets_counts_records_not_requests(mongo):
    """One ticket event can carry two Open311 requests (its source and a 重复件): a redelivered record is one
    duplicate, not two — a count above the batch would break the consumer's accounting and replay it forever."""
    from types import SimpleNamespace

    from civicbus.district import load_district
    from civicbus.events import EventKind, Repeat
    from civicbus.kafka import Consumed
    from civicbus.settings import DEFAULT_CONFIG_DIR
    from services.intake.open311_requests import RequestStore

    from .ticket_stories import TicketStory

    store = RequestStore(SimpleNamespace(db=mongo, district=load_district(DEFAULT_CONFIG_DIR)))
    source, repeat = f"o311-{uuid.uuid4().hex}", f"o311-{uuid.uuid4().hex}"
    for request_id in (source, repeat):
        assert await store.record(request_id, {"status": "open", "ticket_version": 0})
    now = datetime.now().astimezone()
    story = TicketStory(f"SF-{source}", "open311", now, title="路灯不亮", content="路灯不亮", lead_unit="jianshe",
                        category="urban.roads", category_name="城市管理/道路设施")
    story.ticket = story.ticket.model_copy(update={"source_event_id": source,
                                                   "repeats": [Repeat(event_id=repeat, at=now)]})
    story.step(EventKind.ticket_routed, now)
    record = Consumed(story.events[-1], None)

    assert (await store.follow_tickets([record])).duplicates == 0
    assert (await store.follow_tickets([record])).duplicates == 1
    (followed,) = await store.by_ids([repeat])
    assert followed["ticket_version"] == story.ticket.version and followed["status"] == "open"
    posted = await mongo["open311_requests"].find_one({"_id": repeat})
    assert posted["ticket_version"] == 0, "the POST's document has one writer; the ticket's status is its own"


async def test_a_request_whose_publish_timed_out_appears_once_its_ticket_does(mongo):
    """Kafka did not acknowledge in time, yet wrote the event: the request was kept (hidden), not deleted, and its
    ticket's first transition shows it."""
    from types import SimpleNamespace

    from civicbus.district import load_district
    from civicbus.events import EventKind
    from civicbus.kafka import Consumed
    from civicbus.settings import DEFAULT_CONFIG_DIR
    from services.intake.open311_requests import RequestStore

    from .ticket_stories import TicketStory

    store = RequestStore(SimpleNamespace(db=mongo, district=load_district(DEFAULT_CONFIG_DIR)))
    request_id = f"o311-{uuid.uuid4().hex}"
    now = datetime.now().astimezone()
    await store.record(request_id, {"status": "open", "ticket_version": 0, "requested_datetime": now,
                                    "service_code": "urban.roads", "published": False})
    assert await store.by_ids([request_id]) == []
    assert request_id not in [item["_id"] for item in await store.search(now - timedelta(minutes=1),
                                                                          now + timedelta(minutes=1), [], [])]
    story = TicketStory(f"SF-{request_id}", "open311", now, title="路灯不亮", content="路灯不亮", lead_unit="jianshe",
                        category="urban.roads", category_name="城市管理/道路设施")
    story.ticket = story.ticket.model_copy(update={"source_event_id": request_id})
    story.step(EventKind.ticket_routed, now)
    await store.follow_tickets([Consumed(story.events[-1], None)])
    [shown] = await store.by_ids([request_id])
    assert shown["agency_responsible"] == "建设管理办公室"
