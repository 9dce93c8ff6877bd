"""Open311 GeoReport v2 (``/open311/v2``), faithful to the spec so existing Open311 clients work unmodified.

Served while the configuration has an ``open311.yaml`` (the catalogue, ``open311_catalog.py``): without one every
resource answers 404, and a reload that adds or removes the file turns Open311 on or off without a restart.

Every resource ends in ``.json`` or ``.xml``: discovery, services (with group and keywords), a service's definition
(attributes with datatypes and value lists), POST requests (form-encoded, ``api_key``, ``lat``/``long`` in WGS84 or
``address_string``/``address_id``, ``attribute[CODE]``), GET requests (filters ``service_request_id``,
``service_code``, ``start_date``, ``end_date``, ``status``; ``page`` and ``page_size``, the common extension),
GET requests/{id}, GET tokens/{token}, and FixMyStreet's ``servicerequestupdates`` extension (one update per
transition a citizen hears of: open, in_progress, fixed, closed). Errors are the spec's ``<errors><error><code/><description/></error>``
(or the JSON list) with 400, 403 or 404. Datetimes are ISO 8601 with the district's offset.

A posted request is a complaint (channel ``open311``) admitted like every other submission; the chosen service
decides the category as a 12345 category code would. It is answered with its ``service_request_id`` at once —
intake answers after Kafka acknowledged the event — so tokens are only a courtesy: a token is the request id.
GET endpoints need no key (Open311 reads are public) and expose no personal data: what a request keeps —
description, address, media_url (its query string too), status notes — is stored and served masked
(``civicbus/privacy.py``), the caller's own name included wherever it recurs; POST needs an ``api_key`` (a civicbus
API key).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from civicbus.auth import SUBMITTERS, Role, authenticate
from civicbus.errors import validation_problems
from civicbus.events import EARLIEST, LATEST, ComplaintSubmission, Location, utcnow
from civicbus.logs import get_logger
from civicbus.privacy import mask_personal_data, mask_url
from civicbus.service import RETRY_AFTER_S
from civicbus.topics import EVENTS

from .admission import Inadmissible
from .api import publish_acknowledged
from .open311_catalog import AttributeSpec, Catalog, Service
from .open311_requests import RequestStore

log = get_logger(__name__)

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
DEFAULT_WINDOW = timedelta(days=90)  # the spec's default span of GET requests
MAX_PAGE_SIZE = 1000  # the spec's default cap
# Element names of list items in XML (JSON has plain lists).
ITEM_TAGS = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format"}
# What the citizen called the complaint fields, for error messages.
FORM_NAMES = {"content": "description", "address": "address_string", "caller_phone": "phone",
              "caller_name": "first_name/last_name", "location": "lat/long"}
REQUEST_FIELDS = ("service_request_id", "status", "status_notes", "service_name", "service_code", "description",
                  "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
                  "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url")


MAX_DESCRIPTION = 4000  # GeoReport v2: "description … up to 4,000 characters"
OPEN311_SUBMITTERS = (*SUBMITTERS, Role.open311)  # the keys issued for Open311 clients post only here
MAX_MEDIA_URL = 200  # it becomes a label, and labels are short texts


class Open311Error(Exception):
    def __init__(self, status: int, *descriptions: str, headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions
        self.headers = headers or {}


# --------------------------------------------------------------------------- rendering


# Characters XML 1.0 forbids: one of them in a citizen's description would make the whole public feed ill-formed.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: Any, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _datetime(value, zone)
    return _NOT_XML.sub("", str(value))


def _datetime(value: datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).isoformat(timespec="seconds")


def _element(tag: str, value: Any, zone: ZoneInfo) -> ElementTree.Element:
    element = ElementTree.Element(tag)
    if isinstance(value, dict):
        for name, child in value.items():
            element.append(_element(name, child, zone))
    elif isinstance(value, list):
        for child in value:
            element.append(_element(ITEM_TAGS.get(tag, "item"), child, zone))
    else:
        element.text = _text(value, zone)
    return element


def _json_ready(value: Any, zone: ZoneInfo) -> Any:
    if isinstance(value, datetime):
        return _datetime(value, zone)
    if isinstance(value, dict):
        return {name: _json_ready(child, zone) for name, child in value.items()}
    if isinstance(value, list):
        return [_json_ready(child, zone) for child in value]
    return value


def render(fmt: str, root: str, item: str | None, payload: Any, zone: ZoneInfo, status: int = 200) -> Response:
    """``payload`` as JSON, or as XML under ``root`` (each list entry an ``item`` element)."""
    if fmt == "json":
        return Response(orjson.dumps(_json_ready(payload, zone)), status_code=status, media_type=FORMATS["json"])
    if item is None:
        tree = _element(root, payload, zone)
    else:
        tree = ElementTree.Element(root)
        tree.extend(_element(item, entry, zone) for entry in payload)
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(tree, encoding="utf-8", xml_declaration=False)
    return Response(body, status_code=status, media_type=FORMATS["xml"])


def render_error(fmt: str, error: Open311Error) -> Response:
    errors = [{"code": error.status, "description": description} for description in error.descriptions]
    return render(fmt if fmt in FORMATS else "xml", "errors", "error", errors, ZoneInfo("UTC"), error.status)


# --------------------------------------------------------------------------- plumbing


def _catalog(request: Request) -> Catalog:
    """The catalogue in force, read once per request (FastAPI caches a dependency per request): a reload swaps it
    whole, and a request sees the old one or the new one, never both. While the configuration has no
    ``open311.yaml``, Open311 is off and every resource answers 404."""
    catalog = request.app.state.open311
    if catalog is None:
        raise Open311Error(404, "本街道未开通 Open311 (Open311 is not offered here)")
    return catalog


InForce = Annotated[Catalog, Depends(_catalog)]
router = APIRouter(prefix="/open311/v2", tags=["Open311 GeoReport v2"], dependencies=[Depends(_catalog)])


def _zone(request: Request) -> ZoneInfo:
    return ZoneInfo(request.app.state.runtime.district.timezone)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise Open311Error(404, f"不支持的格式 {fmt!r}：请用 .xml 或 .json (format not supported)")


def _check_jurisdiction(catalog: Catalog, supplied: str | None) -> None:
    expected = catalog.settings.jurisdiction_id
    if supplied and supplied != expected:
        raise Open311Error(404, f"jurisdiction_id {supplied!r} 不存在 (jurisdiction not found; this is {expected})")


def _service(catalog: Catalog, code: str) -> Service:
    service = catalog.services.get(code)
    if service is None:
        raise Open311Error(404, f"service_code {code!r} 不存在 (service not found)")
    return service


def _parse_datetime(name: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise Open311Error(400, f"{name} 应为 ISO 8601 时间，如 2026-11-25T08:00:00+08:00 (not a datetime)") from error
    if moment.tzinfo is None:
        raise Open311Error(400, f"{name} 须带时区，如 +08:00 或 Z (a timezone is required)")
    if not EARLIEST <= moment < LATEST:  # 0001-01-01T00:00:00+14:00 is not even a UTC time
        raise Open311Error(400, f"{name} 须在 1970-01-01 至 2100-01-01 之间 (must be between 1970 and 2100)")
    return moment


def _listed(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _positive(name: str, value: str | None, default: int, most: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise Open311Error(400, f"{name} 应为 1 到 {most} 的整数 (must be an integer from 1 to {most})")
    return int(value)


def _request_view(document: dict[str, Any]) -> dict[str, Any]:
    view = {name: document.get(name) for name in REQUEST_FIELDS}
    view["service_request_id"] = document["_id"]
    # Public: masked again as served, so requests recorded before a form was known to the policy are masked too.
    for name in ("description", "address", "status_notes"):
        view[name] = mask_personal_data(view[name] or "")
    # The spec's schemas allow a URI or null, never "".
    view["media_url"] = mask_url(document["media_url"]) if document.get("media_url") else None
    return view


async def open311_error_handler(request: Request, error: Exception) -> Response:
    """The spec's error document, in the format the path asked for (XML, the required format, otherwise)."""
    assert isinstance(error, Open311Error)
    response = render_error(request.path_params.get("fmt") or request.url.path.rsplit(".", 1)[-1], error)
    if error.status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    response.headers.update(error.headers)
    return response


# --------------------------------------------------------------------------- resources


@router.get("/discovery.{fmt}", summary="Service discovery (服务发现)")
async def discovery(request: Request, fmt: str, catalog: InForce) -> Response:
    _check_format(fmt)
    settings = catalog.settings
    document = {
        "changeset": settings.changeset,
        "contact": settings.contact,
        "key_service": settings.key_service,
        "endpoints": [{
            "specification": SPECIFICATION,
            "url": str(request.base_url).rstrip("/") + router.prefix,
            "changeset": settings.changeset,
            "type": "production",
            "formats": [media_type.split(";")[0] for media_type in FORMATS.values()],
        }],
    }
    return render(fmt, "discovery", None, document, _zone(request))


@router.get("/services.{fmt}", summary="Service list (服务目录): the categories citizens may report")
async def services(request: Request, fmt: str, catalog: InForce) -> Response:
    _check_format(fmt)
    _check_jurisdiction(catalog, request.query_params.get("jurisdiction_id"))
    listing = [service.listing() for service in catalog.services.values()]
    return render(fmt, "services", "service", listing, _zone(request))


@router.get("/services/{code}.{fmt}", summary="Service definition (服务定义): the attributes a service asks")
async def service_definition(request: Request, code: str, fmt: str, catalog: InForce) -> Response:
    _check_format(fmt)
    _check_jurisdiction(catalog, request.query_params.get("jurisdiction_id"))
    return render(fmt, "service_definition", None, _service(catalog, code).definition(), _zone(request))


async def _one_request(request: Request, catalog: Catalog, fmt: str, request_id: str, named: str) -> dict[str, Any]:
    """The request a path names — by its id, or by its token, which is the same id — after the checks every read
    makes; 404 saying which ``named`` parameter named nothing."""
    _check_format(fmt)
    _check_jurisdiction(catalog, request.query_params.get("jurisdiction_id"))
    documents = await _store(request).by_ids([request_id])
    if not documents:
        raise Open311Error(404, f"{named} {request_id!r} 不存在 ({named} not found)")
    return documents[0]


@router.get("/requests/{request_id}.{fmt}", summary="One service request (诉求详情)")
async def get_request(request: Request, request_id: str, fmt: str, catalog: InForce) -> Response:
    document = await _one_request(request, catalog, fmt, request_id, "service_request_id")
    return render(fmt, "service_requests", "request", [_request_view(document)], _zone(request))


@router.get("/tokens/{token}.{fmt}", summary="The request id of a token (回执查询)")
async def get_token(request: Request, token: str, fmt: str, catalog: InForce) -> Response:
    document = await _one_request(request, catalog, fmt, token, "token")
    return render(fmt, "service_requests", "request", [{"service_request_id": document["_id"], "token": token}],
                  _zone(request))


@router.get("/servicerequestupdates.{fmt}",
            summary="Updates of service requests (FixMyStreet's servicerequestupdates extension, 办理进展)")
async def service_request_updates(request: Request, fmt: str, catalog: InForce) -> Response:
    _check_format(fmt)
    params = request.query_params
    _check_jurisdiction(catalog, params.get("jurisdiction_id"))
    end = _parse_datetime("end_date", params["end_date"]) if params.get("end_date") else utcnow()
    start = _parse_datetime("start_date", params["start_date"]) if params.get("start_date") else end - DEFAULT_WINDOW
    updates = [
        {"update_id": document["_id"], "service_request_id": document["service_request_id"],
         "status": document["status"], "updated_datetime": document["updated_datetime"],
         "description": mask_personal_data(document["description"]), "media_url": document.get("media_url") or None}
        for document in await _store(request).updates_between(start, end)
    ]
    return render(fmt, "service_requests_updates", "request_update", updates, _zone(request))


def _store(request: Request) -> RequestStore:
    return request.app.state.open311_requests


@router.get("/requests.{fmt}", summary="Service requests (诉求列表) with their status, filtered and paged")
async def get_requests(request: Request, fmt: str, catalog: InForce) -> Response:
    _check_format(fmt)
    params = request.query_params
    _check_jurisdiction(catalog, params.get("jurisdiction_id"))
    store = _store(request)
    ids = _listed(params.get("service_request_id"))
    if ids:  # the spec: with ids, every other filter is ignored
        documents = await store.by_ids(ids[:MAX_PAGE_SIZE])
    else:
        end = _parse_datetime("end_date", params["end_date"]) if params.get("end_date") else utcnow()
        start = _parse_datetime("start_date", params["start_date"]) if params.get("start_date") else end - DEFAULT_WINDOW
        statuses = _listed(params.get("status"))
        if set(statuses) - {"open", "closed"}:
            raise Open311Error(400, "status 只能是 open 或 closed (status must be open or closed)")
        page = _positive("page", params.get("page"), 1, 1_000_000)
        page_size = _positive("page_size", params.get("page_size"), MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        documents = await store.search(start, end, _listed(params.get("service_code")), statuses)
        documents = documents[(page - 1) * page_size : page * page_size]
    return render(fmt, "service_requests", "request", [_request_view(document) for document in documents],
                  _zone(request))


# --------------------------------------------------------------------------- POST requests


def _answers(form: FormData, service: Service) -> tuple[dict[str, str], list[str]]:
    """The attribute answers as labels ``open311_<code>``, and the problems found."""
    labels: dict[str, str] = {}
    problems: list[str] = []
    for _, spec in service.attributes:
        values = [value for value in (*form.getlist(f"attribute[{spec.code}]"), *form.getlist(f"attribute[{spec.code}][]"))
                  if isinstance(value, str) and value.strip()]
        if not values:
            if spec.required and spec.variable:
                problems.append(f"attribute[{spec.code}] 必填：{spec.description} (required)")
            continue
        problem = _check_answer(spec, values)
        if problem:
            problems.append(f"attribute[{spec.code}] {problem}")
            continue
        labels[f"open311_{spec.code.lower()}"] = ",".join(values)
    return labels, problems


def _check_answer(spec: AttributeSpec, values: list[str]) -> str:
    keys = {value.key for value in spec.values}
    if spec.datatype != "multivaluelist" and len(values) > 1:
        return "只能有一个值 (one value expected)"
    if spec.datatype in ("singlevaluelist", "multivaluelist") and set(values) - keys:
        return f"的值须为 {'、'.join(sorted(keys))} 之一 (not in the value list)"
    if spec.datatype == "number":
        try:
            float(values[0])
        except ValueError:
            return "应为数字 (a number is expected)"
    if spec.datatype == "datetime":
        try:
            datetime.fromisoformat(values[0].replace("Z", "+00:00"))
        except ValueError:
            return "应为 ISO 8601 时间 (a datetime is expected)"
    if sum(len(value) for value in values) > 200:
        return "过长：上限 200 字 (at most 200 characters)"
    return ""


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _location(form: FormData) -> Location | None:
    lat, lon = _field(form, "lat"), _field(form, "long")
    if not lat and not lon:
        return None
    try:
        # Open311's lat/long are WGS84 (GPS); apps on 高德/腾讯 maps must convert from GCJ-02 first.
        return Location(lat=float(lat), lon=float(lon))
    except (ValueError, ValidationError) as error:
        raise Open311Error(400, "lat/long 应为 WGS84 经纬度数值 (lat and long must be WGS84 degrees)") from error


@router.post("/requests.{fmt}", summary="Post a service request (提交诉求), form-encoded with api_key")
async def post_request(request: Request, fmt: str, catalog: InForce) -> Response:
    _check_format(fmt)
    form = await request.form()
    key = _field(form, "api_key") or request.headers.get("X-API-Key", "")
    try:
        principal = await authenticate(request, key)
    except HTTPException as error:  # too many wrong keys from this address: the spec's error document, and the wait
        raise Open311Error(error.status_code, str(error.detail), headers=error.headers) from None
    if principal is None:
        raise Open311Error(403, "api_key 缺失或无效 (api_key missing or invalid)")
    if principal.role not in OPEN311_SUBMITTERS:
        raise Open311Error(403, "无权提交诉求：需要 system、admin 或 open311 角色的密钥 "
                                "(this api_key may not post requests)")
    _check_jurisdiction(catalog, _field(form, "jurisdiction_id"))
    code = _field(form, "service_code")
    if not code:
        raise Open311Error(400, "缺少 service_code (service_code not provided)")
    service = catalog.services.get(code)
    if service is None:
        raise Open311Error(400, f"service_code {code!r} 不存在 (service_code not found)")
    location = _location(form)
    address, address_id = _field(form, "address_string"), _field(form, "address_id")
    if location is None and not address and not address_id:
        raise Open311Error(400, "须提供 lat/long、address_string 或 address_id (a location is required)")
    labels, problems = _answers(form, service)
    if problems:
        raise Open311Error(400, *problems)
    media_url = _field(form, "media_url")
    if media_url and (urlsplit(media_url).scheme not in ("http", "https") or not urlsplit(media_url).netloc
                      or len(media_url) > MAX_MEDIA_URL):
        raise Open311Error(400, f"media_url 须为不超过 {MAX_MEDIA_URL} 个字符的 http(s) 地址 "
                                f"(media_url must be an http(s) URL of at most {MAX_MEDIA_URL} characters)")
    labels["open311_service"] = service.code
    if media_url:
        labels["open311_media_url"] = media_url
    description = _field(form, "description")
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, f"description 超过 {MAX_DESCRIPTION} 个字符 (longer than the spec's {MAX_DESCRIPTION})")
    try:
        submission = ComplaintSubmission(
            title=service.name,
            content=description or service.name,
            address=address or address_id,
            location=location,
            labels=labels,
            channel="open311",
            caller_name=f"{_field(form, 'last_name')}{_field(form, 'first_name')}",  # 姓 then 名
            caller_phone=_field(form, "phone"),  # kept for the 回访 callback; e-mail is not kept at all
            upstream_category=service.upstream_code,
        )
        event = request.app.state.admission.event(submission, principal.name, request.headers.get("Idempotency-Key", ""))
    except ValidationError as error:
        raise Open311Error(400, *_form_problems(validation_problems(error))) from error
    except Inadmissible as error:
        raise Open311Error(400, *_form_problems(error.problems)) from error

    store = _store(request)
    now = utcnow()
    last, first = _field(form, "last_name"), _field(form, "first_name")
    names = (last + first, last, first)  # the caller's own name, masked wherever the caller repeated it
    # Recorded before the event is published, so its ticket's first transition always finds it; shown once Kafka
    # has acknowledged the event. A retried POST (the same event) finds it recorded and publishes again.
    await store.record(event.event_id, {
        "service_code": service.code,
        "service_name": service.name,
        "description": mask_personal_data(description, names),
        "address": mask_personal_data(address, names),
        "address_id": mask_personal_data(address_id, names),
        "zipcode": "",
        "lat": location.lat if location else None,
        "long": location.lon if location else None,
        "media_url": mask_url(media_url),
        "requested_datetime": now,
        "updated_datetime": now,
        "status": "open",
        "status_notes": "已受理 (received)",
        "agency_responsible": "",
        "service_notice": "",
        "expected_datetime": None,
        "ticket_version": 0,
        "submitted_by": principal.name,
        "published": False,
    })
    try:
        await publish_acknowledged(request, EVENTS, [event])
    except Exception as error:
        log.exception("Open311 request not accepted: Kafka did not acknowledge it")
        raise Open311Error(503, "暂时无法受理，请稍后重试 (service unavailable; retry later)") from error
    await store.published(event.event_id)
    log.info("Open311 request accepted", event_id=event.event_id, service_code=service.code, source=event.source)
    answer = [{"service_request_id": event.event_id, "service_notice": "已受理，正在派单", "account_id": None}]
    return render(fmt, "service_requests", "request", answer, _zone(request), status=201)


def _form_problems(problems: list[str]) -> list[str]:
    renamed = []
    for problem in problems:
        field, _, message = problem.partition(":")
        head = field.split(".")[0]
        renamed.append(f"{FORM_NAMES.get(head, head)}:{message}")
    return renamed


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def not_served(request: Request, path: str) -> Response:
    """What Open311 clients may ask that civicbus does not serve (``POST servicerequestupdates.xml``, an unknown
    resource) is answered in the spec's error format, not FastAPI's ``{"detail": …}``."""
    served = [route for route in router.routes if route is not request.scope.get("route")
              and getattr(route, "path_regex", None) and route.path_regex.match(request.url.path)]
    if served:
        raise Open311Error(405, f"{request.method} 不适用于 {path} (method not allowed)")
    raise Open311Error(404, f"{path} 不存在 (no such resource)")
