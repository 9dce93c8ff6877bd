"""The sub-district's domain configuration (辖区配置): units, leaders, areas, categories, routing, deadlines.

Domain data lives in versioned files under one folder (``config/sample`` ships a fictional 示范街道):

=================  ==========================================================================
``district.yaml``  the sub-district, its leaders (领导) and units (科室 / 村社区 / 站所) with contacts
``areas.geojson``  each village's / community's jurisdiction (辖区范围) and address keywords
``categories.yaml`` the category tree (事项分类) with keyword rules
``routing.yaml``   the routing tree (派单规则), modelled on Alertmanager's
``deadlines.yaml`` deadline policies (时限) and office hours
=================  ==========================================================================

Everything is validated when a service starts. A broken file stops the service with a
:class:`DistrictConfigError` that names the file, the entry and the problem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, time
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

SUPPORTED_VERSION = 1
ModelT = TypeVar("ModelT", bound=BaseModel)


class DistrictConfigError(ValueError):
    """A domain configuration file is invalid; the message names the file, the entry and the problem."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- district.yaml

Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]*$", max_length=64)]


def _known_zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {zone!r}") from error
    return zone


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]  # an IANA name, e.g. Asia/Shanghai


class UnitKind(StrEnum):
    department = "department"  # 科室
    village = "village"  # 村
    community = "community"  # 社区
    station = "station"  # 站所


class LeaderRole(StrEnum):
    main = "main"  # 主要领导 (书记, 主任)
    in_charge = "in_charge"  # 分管领导


def _http_url(url: str) -> str:
    if not re.match(r"^https?://[^\s/]+", url):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class WebhookChannel(Strict):
    """A generic JSON webhook (通用 Webhook): the message and the ticket's ids as one JSON object."""

    type: Literal["webhook"] = "webhook"
    url: HttpUrl
    rate_per_minute: int | None = Field(default=None, gt=0, description="messages a minute before a digest")


class DingTalkChannel(Strict):
    """A DingTalk custom group robot (钉钉自定义机器人); ``secret`` is its 加签 key (SEC…), if signing is on."""

    type: Literal["dingtalk"]
    url: HttpUrl = Field(description="https://oapi.dingtalk.com/robot/send?access_token=…")
    secret: str = ""
    rate_per_minute: int | None = Field(default=20, gt=0, description="DingTalk bans a robot for 10 min past 20/min")


class WeComChannel(Strict):
    """A WeCom group robot (企业微信群机器人)."""

    type: Literal["wecom"]
    url: HttpUrl = Field(description="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…")
    rate_per_minute: int | None = Field(default=20, gt=0)


class FeishuChannel(Strict):
    """A Feishu custom bot (飞书自定义机器人); ``secret`` is its 签名校验 key, if signing is on."""

    type: Literal["feishu"]
    url: HttpUrl = Field(description="https://open.feishu.cn/open-apis/bot/v2/hook/…")
    secret: str = ""
    rate_per_minute: int | None = Field(default=100, gt=0)


class EmailChannel(Strict):
    """E-mail (电子邮件) over the SMTP server of ``notify.yaml``."""

    type: Literal["email"]
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    rate_per_minute: int | None = Field(default=None, gt=0)


class SmsChannel(Strict):
    """SMS (短信) through the HTTP gateway of ``notify.yaml``."""

    type: Literal["sms"]
    phones: list[Annotated[str, Field(pattern=r"^1[3-9]\d{9}$")]] = Field(min_length=1)
    rate_per_minute: int | None = Field(default=None, gt=0)


Channel = Annotated[
    WebhookChannel | DingTalkChannel | WeComChannel | FeishuChannel | EmailChannel | SmsChannel,
    Field(discriminator="type"),
]


class Contact(Strict):
    name: str
    role: str = ""
    phone: str = ""
    email: str = ""
    channels: list[Channel] = Field(default=[], description="this person's own channels (e.g. SMS to the duty phone)")


class Leader(Strict):
    id: Identifier
    name: str
    title: str
    role: LeaderRole
    phone: str = ""
    channels: list[Channel] = []


class Unit(Strict):
    id: Identifier
    name: str
    kind: UnitKind
    leader: Identifier = Field(description="the leader in charge (分管领导 / 联村领导)")
    contacts: list[Contact] = []
    channels: list[Channel] = []

    @property
    def is_area_unit(self) -> bool:
        return self.kind in (UnitKind.village, UnitKind.community)


class DistrictFile(Strict):
    version: int
    name: str
    code: str = Field(default="CB", pattern=r"^[A-Z]{1,6}$", description="prefix of work-order numbers (工单号)")
    timezone: TimeZoneName = "Asia/Shanghai"
    dispatcher: Identifier = Field(description="the unit that dispatches by hand what no rule places (人工派单)")
    leaders: list[Leader]
    units: list[Unit]


# --------------------------------------------------------------------------- areas.geojson


class AreaProperties(Strict):
    unit: Identifier
    name: str
    address_keywords: list[str] = Field(default=[], description="roads, 小区 and landmark names in this area")


# --------------------------------------------------------------------------- categories.yaml


class Keyword(Strict):
    term: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)


class Category(Strict):
    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")]
    name: str
    keywords: list[Keyword] = []
    exclude: list[str] = Field(default=[], description="phrases that veto this category (e.g. 演练 for a fire drill)")
    upstream_codes: list[str] = Field(default=[], description="category codes sent by the 12345 platform")
    alarm_types: list[str] = Field(default=[], description="alarm types (smoke, water_quality, …) of this category")
    inspection_types: list[str] = Field(default=[], description="inspection lines (安全生产, 生态环保, …)")
    children: list[Category] = []

    @field_validator("keywords", mode="before")
    @classmethod
    def _plain_terms(cls, value: Any) -> Any:
        """Let a plain string stand for a keyword of weight 1."""
        if isinstance(value, list):
            return [{"term": item} if isinstance(item, str) else item for item in value]
        return value


class LearnedModelSettings(Strict):
    """The learned text classifier (``civicbus classifier train``) that triage consults beside the keyword rules."""

    path: str = Field(min_length=1, description="the model file, relative to the configuration folder")
    min_probability: float = Field(
        default=0.6, ge=0, le=1, description="below this the model's answer alone never decides (人工派单)"
    )


class CategoriesFile(Strict):
    version: int
    categories: list[Category]
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    model: LearnedModelSettings | None = Field(default=None, description="the learned classifier, if any")


# --------------------------------------------------------------------------- routing.yaml

MATCHER_RE = re.compile(r'^\s*([a-z_][a-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


@dataclass(frozen=True)
class Matcher:
    """One Alertmanager-style matcher on an event label: ``label=value``, ``!=``, ``=~`` (regex), ``!~``."""

    label: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        found = MATCHER_RE.match(text)
        if not found:
            raise ValueError(f'matcher {text!r} is not of the form label=value, label!=value, label=~"regex"')
        label, op, value = found.groups()
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"matcher {text!r}: invalid regular expression: {error}") from error
        return cls(label, op, value)

    @cached_property
    def _regex(self) -> re.Pattern[str]:
        # Anchored like Alertmanager's: the whole label value must match.
        return re.compile(f"^(?:{self.value})$")

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = bool(self._regex.match(actual))
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


AREA_UNIT = "$area"
"""As a lead or assisting unit: the village/community whose jurisdiction the event is in (属地)."""


class Route(Strict):
    name: str
    matchers: list[str] = []
    lead: str | None = Field(default=None, description=f"lead unit (主办) id, or {AREA_UNIT!r} for the area's unit")
    assist: list[str] = Field(default=[], description="assisting units (协办)")
    leader: Identifier | None = Field(default=None, description="leader in charge; default: the lead unit's")
    deadline: Identifier | None = Field(default=None, description="deadline policy name; default: inherited")
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = []

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("matchers")
    @classmethod
    def _parse_matchers(cls, matchers: list[str]) -> list[str]:
        for text in matchers:
            Matcher.parse(text)
        return matchers

    @cached_property
    def parsed_matchers(self) -> tuple[Matcher, ...]:
        return tuple(Matcher.parse(text) for text in self.matchers)


class Grouping(Strict):
    """What counts as the same problem again (合并): alarm storms and repeated complaints (重复件)."""

    alarm_fingerprint: list[Literal["device_id", "alarm_type", "source", "address"]] = Field(
        default=["device_id", "alarm_type"], min_length=1,
        description="alarm fields that together identify one alarm; repeats join its open ticket",
    )
    repeat_window_hours: float = Field(
        default=168, gt=0, description="a complaint about the same category and place within this time is a 重复件"
    )
    recurrence_window_days: float = Field(
        default=30, gt=0, description="such a complaint within this time after 办结 reopens the ticket (反弹)"
    )


class RoutingFile(Strict):
    version: int
    route: Route
    grouping: Grouping = Grouping()

    @model_validator(mode="after")
    def _root_catches_all(self) -> RoutingFile:
        if self.route.matchers:
            raise ValueError("the root route is the default route: it must not have matchers")
        return self


# --------------------------------------------------------------------------- deadlines.yaml


class Duration(Strict):
    """A span of time: calendar ``hours`` (emergencies run round the clock) or ``working_days`` / ``working_hours``
    counted on the Chinese working calendar (法定节假日 and 调休 working weekends) within office hours."""

    hours: float | None = Field(default=None, gt=0)
    working_hours: float | None = Field(default=None, gt=0)
    working_days: float | None = Field(default=None, gt=0)

    def scaled(self, factor: float) -> Duration:
        return Duration(**{name: value * factor for name, value in self.model_dump(exclude_none=True).items()})

    @model_validator(mode="after")
    def _exactly_one(self) -> Duration:
        given = [name for name in ("hours", "working_hours", "working_days") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of hours, working_hours, working_days")
        return self


class DeadlinePolicy(Strict):
    name: str = Field(description="what staff read, e.g. 紧急事项")
    sign_for: Duration  # 签收时限
    resolve: Duration  # 办结时限


class OfficeHours(Strict):
    start: time = time(8, 30)
    end: time = time(17, 30)

    @model_validator(mode="after")
    def _ordered(self) -> OfficeHours:
        if self.start >= self.end:
            raise ValueError("office hours must start before they end")
        return self


class HeightenedResponse(Strict):
    """The heightened response level (e.g. 一级响应 during a major event or holiday): shorter deadlines and earlier
    escalation for tickets created while it is on."""

    name: str = "一级响应"
    deadline_factor: float = Field(default=0.5, gt=0, le=1, description="deadlines are multiplied by this")
    escalation_factor: float = Field(default=0.5, gt=0, le=1, description="escalation delays are multiplied by this")


class DeadlinesFile(Strict):
    version: int
    office_hours: OfficeHours = OfficeHours()
    holidays: list[date] = Field(
        default=[], description="extra days off, for years chinese-calendar does not know yet (published each winter)"
    )
    working_days: list[date] = Field(default=[], description="extra working days (调休上班), likewise")
    heightened: HeightenedResponse = HeightenedResponse()
    default_policy: Identifier
    severity_policies: dict[str, Identifier] = Field(
        default={}, description="severity → policy that overrides the route's (e.g. critical → emergency)"
    )
    policies: dict[Identifier, DeadlinePolicy]

    @model_validator(mode="after")
    def _policies_exist(self) -> DeadlinesFile:
        severities = {"low", "normal", "high", "critical"}
        for severity in self.severity_policies:
            if severity not in severities:
                raise ValueError(f"severity_policies: unknown severity {severity!r}; known: {', '.join(sorted(severities))}")
        for where, name in [("default_policy", self.default_policy), *self.severity_policies.items()]:
            if name not in self.policies:
                raise ValueError(f"{where}: unknown policy {name!r}; known: {', '.join(self.policies)}")
        return self


# --------------------------------------------------------------------------- notify.yaml

DeadlineName = Literal["sign_for", "resolve"]


class SmtpServer(Strict):
    """The mail server e-mail channels send through (aiosmtplib)."""

    host: str = Field(min_length=1)
    port: int = Field(default=587, gt=0, lt=65536)
    starttls: bool = Field(default=True, description="upgrade the connection with STARTTLS (port 587)")
    implicit_tls: bool = Field(default=False, description="TLS from the first byte (port 465)")
    username: str | None = Field(default=None, description="log in when given (an empty value: no login)")
    password: str | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="the From address")
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_tls_mode(self) -> SmtpServer:
        if self.starttls and self.implicit_tls:
            raise ValueError("choose starttls or implicit_tls, not both")
        return self


class SmsGateway(Strict):
    """An HTTP SMS gateway (短信网关): one POST per phone, its JSON body rendered from ``body_template`` (Jinja2,
    given ``phone`` and ``text``; use ``| tojson``)."""

    url: HttpUrl
    headers: dict[str, str] = Field(default={}, description="e.g. an Authorization header from ${SMS_TOKEN}")
    username: str = Field(default="", description="HTTP basic auth, if the gateway wants it")
    password: str = ""
    body_template: str = Field(min_length=2)
    success_field: str = Field(default="", description="a field of the JSON answer that says whether it was sent")
    success_value: str = Field(default="", description="the value of success_field that means sent")
    max_length: int = Field(default=300, gt=10, description="longer texts are cut (an SMS is short)")

    @field_validator("body_template")
    @classmethod
    def _valid_template(cls, template: str) -> str:
        import jinja2

        try:
            jinja2.Environment().parse(template)
        except jinja2.TemplateSyntaxError as error:
            raise ValueError(f"body_template is not a valid Jinja2 template: {error}") from error
        return template


class QuietHours(Strict):
    """Hours in which non-urgent messages are held and sent as one digest when they end (免打扰)."""

    enabled: bool = True
    start: time = time(22, 0)
    end: time = time(7, 30)
    urgent_severities: list[Literal["low", "normal", "high", "critical"]] = Field(
        default=["high", "critical"], description="tickets of these severities are never held"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours must not start when they end")
        return self


class Reminders(Strict):
    """Reminders to the lead unit before a deadline (到期提醒), at fractions of the time allowed."""

    at_fractions: list[float] = Field(default=[0.8], description="e.g. 0.8: when 80 % of the time has passed")
    deadlines: list[DeadlineName] = ["sign_for", "resolve"]

    @field_validator("at_fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        if any(not 0 < fraction < 1 for fraction in fractions):
            raise ValueError("each fraction must be between 0 and 1 (exclusive)")
        return sorted(set(fractions))


class EscalationTarget(StrEnum):
    unit = "unit"  # 主办单位
    leader_in_charge = "leader_in_charge"  # 分管领导
    main_leaders = "main_leaders"  # 主要领导


class EscalationStep(Strict):
    after_minutes: float = Field(ge=0, description="after the missed deadline; scaled down under 一级响应")
    notify: list[EscalationTarget] = Field(min_length=1)


class EscalationPolicy(Strict):
    """Steps after a missed deadline, like a PagerDuty/Opsgenie escalation policy; they stop when the ticket is
    signed for (签收) or resolved (办结), whichever the missed deadline was about."""

    name: str
    deadlines: list[DeadlineName] = ["sign_for", "resolve"]
    steps: list[EscalationStep] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _in_order(cls, steps: list[EscalationStep]) -> list[EscalationStep]:
        delays = [step.after_minutes for step in steps]
        if delays != sorted(delays):
            raise ValueError("steps must be in the order they fire (after_minutes not decreasing)")
        return steps


class EscalationRule(Strict):
    """Which policy applies: the first rule whose category (a code or an ancestor's code) and response level
    match; a rule without one matches any."""

    category: str = ""
    response_level: Literal["normal", "heightened"] | None = None
    policy: Identifier


class Escalation(Strict):
    default_policy: Identifier
    rules: list[EscalationRule] = []
    policies: dict[Identifier, EscalationPolicy]

    @model_validator(mode="after")
    def _policies_exist(self) -> Escalation:
        for where, name in [("default_policy", self.default_policy),
                            *((f"rules[{index}]", rule.policy) for index, rule in enumerate(self.rules))]:
            if name not in self.policies:
                raise ValueError(f"{where}: unknown escalation policy {name!r}; known: {', '.join(self.policies)}")
        return self

    def policy_for(self, category: str, response_level: str) -> EscalationPolicy:
        for rule in self.rules:
            in_category = not rule.category or category == rule.category or category.startswith(f"{rule.category}.")
            if in_category and rule.response_level in (None, response_level):
                return self.policies[rule.policy]
        return self.policies[self.default_policy]


class DailyDigest(Strict):
    """A morning summary for leaders (每日汇总): the open and overdue tickets in their charge (main leaders: all)."""

    at: time = Field(default=time(8, 0), description="local time it is sent, once a day")
    to: list[Literal["leader_in_charge", "main_leaders"]] = Field(default=["leader_in_charge", "main_leaders"],
                                                                   min_length=1)
    max_listed: int = Field(default=10, gt=0, description="overdue tickets listed by name; the rest are counted")


class NotifyFile(Strict):
    version: int
    smtp: SmtpServer | None = Field(default=None, description="needed when any channel is e-mail")
    sms_gateway: SmsGateway | None = Field(default=None, description="needed when any channel is SMS")
    fallback: list[Channel] = Field(default=[], description="where a message goes when its channel failed (兜底)")
    quiet_hours: QuietHours | None = None
    reminders: Reminders = Reminders()
    escalation: Escalation | None = None
    daily_digest: DailyDigest | None = None


# --------------------------------------------------------------------------- the whole configuration


@dataclass(frozen=True)
class Area:
    unit: Unit
    name: str
    geometry: BaseGeometry
    address_keywords: tuple[str, ...]


@dataclass(frozen=True)
class District:
    """The validated configuration of one sub-district, with look-ups by id."""

    folder: Path
    name: str
    code: str
    timezone: str
    dispatcher: Unit
    leaders: dict[str, Leader]
    units: dict[str, Unit]
    areas: tuple[Area, ...]
    categories: CategoriesFile
    routing: RoutingFile
    deadlines: DeadlinesFile
    notify: NotifyFile = NotifyFile(version=SUPPORTED_VERSION)

    def iter_categories(self) -> Iterator[tuple[Category, tuple[Category, ...]]]:
        """Every category with its ancestors, depth first."""

        def walk(nodes: list[Category], parents: tuple[Category, ...]) -> Iterator[tuple[Category, tuple[Category, ...]]]:
            for node in nodes:
                yield node, parents
                yield from walk(node.children, (*parents, node))

        return walk(self.categories.categories, ())

    @cached_property
    def category_by_code(self) -> dict[str, Category]:
        return {category.code: category for category, _ in self.iter_categories()}

    def category_path(self, code: str) -> str:
        """The category's names from the root, e.g. ``安全生产/消防安全``."""
        for category, parents in self.iter_categories():
            if category.code == code:
                return "/".join(node.name for node in (*parents, category))
        return code

    def leader_of(self, unit_id: str) -> Leader:
        return self.leaders[self.units[unit_id].leader]


_ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(:-([^}]*))?\}")


def _expand_env(data: Any) -> Any:
    """``${NAME:-default}`` in a string value becomes the environment's value (deployments point webhooks elsewhere
    and keep secrets out of the files). Values are expanded after parsing, so a comment is never expanded and a
    secret holding ``#`` or ``: `` cannot change the file's structure."""

    def replace(found: re.Match[str]) -> str:
        name, default = found.group(1), found.group(3)
        value = os.environ.get(name)
        if value is None:
            if default is None:
                raise DistrictConfigError(f"environment variable {name} is not set and has no default")
            return default
        return value

    if isinstance(data, str):
        return _ENV_REFERENCE.sub(replace, data)
    if isinstance(data, dict):
        return {key: _expand_env(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_expand_env(value) for value in data]
    return data


def _read(path: Path) -> Any:
    if not path.is_file():
        raise DistrictConfigError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8")
        return _expand_env(orjson.loads(text) if path.suffix in (".json", ".geojson") else yaml.safe_load(text))
    except DistrictConfigError as error:
        raise DistrictConfigError(f"{path}: {error}") from error
    except (UnicodeDecodeError, yaml.YAMLError, orjson.JSONDecodeError) as error:
        raise DistrictConfigError(f"{path}: cannot be parsed: {error}") from error


def _entry_name(data: Any, location: tuple[int | str, ...]) -> str:
    """``units[3] (id=aj).leader``: the path of a validation error, with the entry's id or name when it has one."""
    parts: list[str] = []
    node = data
    for step in location:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(f".{step}" if parts else str(step))
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(step, int) and isinstance(node, dict):
            label = node.get("id") or node.get("code") or node.get("name")
            if label:
                parts.append(f" ({label})")
    return "".join(parts) or "(top level)"


def _validate(model: type[ModelT], path: Path, data: Any) -> ModelT:
    version = data.get("version") if isinstance(data, dict) else None
    if version != SUPPORTED_VERSION:
        raise DistrictConfigError(f"{path}: version {version} is not supported (this civicbus reads version 1)")
    try:
        parsed = model.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{_entry_name(data, tuple(item['loc']))}: {item['msg']}" for item in error.errors(include_url=False)
        )
        raise DistrictConfigError(f"{path}: {problems}") from error
    return parsed


def load_config_file(model: type[ModelT], path: Path) -> ModelT:
    """Read, expand and validate one versioned configuration file — the way every service loads its own files, so
    every error names the file, the entry and the problem alike."""
    return _validate(model, path, _read(path))


def _fail(path: Path, entry: str, problem: str) -> DistrictConfigError:
    return DistrictConfigError(f"{path}: {entry}: {problem}")


def load_district(folder: str | Path) -> District:
    """Read and cross-check every file of a configuration folder."""
    folder = Path(folder).resolve()
    district_path = folder / "district.yaml"
    district = load_config_file(DistrictFile, district_path)

    leaders: dict[str, Leader] = {}
    for index, leader in enumerate(district.leaders):
        if leader.id in leaders:
            raise _fail(district_path, f"leaders[{index}] ({leader.id})", "duplicate leader id")
        leaders[leader.id] = leader
    units: dict[str, Unit] = {}
    for index, unit in enumerate(district.units):
        entry = f"units[{index}] ({unit.id})"
        if unit.id in units:
            raise _fail(district_path, entry, "duplicate unit id")
        if unit.leader not in leaders:
            raise _fail(district_path, entry, f"leader {unit.leader!r} is not one of the declared leaders")
        units[unit.id] = unit
    if district.dispatcher not in units:
        raise _fail(district_path, "dispatcher", f"unit {district.dispatcher!r} is not declared in units")

    areas_path = folder / "areas.geojson"
    areas = _load_areas(areas_path, units)

    categories_path = folder / "categories.yaml"
    categories = load_config_file(CategoriesFile, categories_path)
    seen_codes: set[str] = set()
    for category in _walk(categories.categories):
        if category.code in seen_codes:
            raise _fail(categories_path, category.code, "duplicate category code")
        seen_codes.add(category.code)

    deadlines_path = folder / "deadlines.yaml"
    deadlines = load_config_file(DeadlinesFile, deadlines_path)

    routing_path = folder / "routing.yaml"
    routing = load_config_file(RoutingFile, routing_path)
    _check_route(routing_path, routing.route, "route", units, leaders, deadlines)

    notify_path = folder / "notify.yaml"
    notify = (load_config_file(NotifyFile, notify_path) if notify_path.is_file()
              else NotifyFile(version=SUPPORTED_VERSION))
    _check_notify(notify_path, notify, district, seen_codes)

    return District(
        folder=folder,
        name=district.name,
        code=district.code,
        timezone=district.timezone,
        dispatcher=units[district.dispatcher],
        leaders=leaders,
        units=units,
        areas=areas,
        categories=categories,
        routing=routing,
        deadlines=deadlines,
        notify=notify,
    )


def _walk(nodes: list[Category]) -> Iterator[Category]:
    for node in nodes:
        yield node
        yield from _walk(node.children)


def _load_areas(path: Path, units: dict[str, Unit]) -> tuple[Area, ...]:
    data = _read(path)
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise DistrictConfigError(f"{path}: expected a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list):
        raise DistrictConfigError(f"{path}: 'features' must be a list of GeoJSON Features")
    areas: list[Area] = []
    seen_units: set[str] = set()
    for index, feature in enumerate(features):
        entry = f"features[{index}]"
        if not isinstance(feature, dict):
            raise _fail(path, entry, "not a GeoJSON Feature object")
        try:
            properties = AreaProperties.model_validate(feature.get("properties") or {})
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False))
            raise _fail(path, entry, problems) from error
        entry = f"features[{index}] ({properties.unit})"
        unit = units.get(properties.unit)
        if unit is None:
            raise _fail(path, entry, "unit is not declared in district.yaml")
        if not unit.is_area_unit:
            raise _fail(path, entry, f"unit is a {unit.kind}, not a village or community")
        if unit.id in seen_units:
            raise _fail(path, entry, "a second jurisdiction for the same unit (merge them into a MultiPolygon)")
        seen_units.add(unit.id)
        try:
            geometry = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise _fail(path, entry, f"invalid geometry: {error}") from error
        if geometry.geom_type not in ("Polygon", "MultiPolygon") or not geometry.is_valid:
            raise _fail(path, entry, "geometry must be a valid Polygon or MultiPolygon (WGS84 lon/lat)")
        areas.append(Area(unit, properties.name, geometry, tuple(properties.address_keywords)))
    if not areas:
        raise DistrictConfigError(f"{path}: no areas")
    return tuple(areas)


def _check_route(
    path: Path,
    route: Route,
    entry: str,
    units: dict[str, Unit],
    leaders: dict[str, Leader],
    deadlines: DeadlinesFile,
) -> None:
    where = f"{entry} ({route.name})"
    for unit_id in [route.lead, *route.assist]:
        if unit_id is not None and unit_id != AREA_UNIT and unit_id not in units:
            raise _fail(path, where, f"unit {unit_id!r} is not declared in district.yaml")
    if route.leader is not None and route.leader not in leaders:
        raise _fail(path, where, f"leader {route.leader!r} is not declared in district.yaml")
    if route.deadline is not None and route.deadline not in deadlines.policies:
        raise _fail(path, where, f"deadline policy {route.deadline!r} is not in deadlines.yaml")
    for index, child in enumerate(route.routes):
        _check_route(path, child, f"{entry}.routes[{index}]", units, leaders, deadlines)


def _check_notify(path: Path, notify: NotifyFile, district: DistrictFile, category_codes: set[str]) -> None:
    """Channels need their server, rules their categories: a message must not fail for want of configuration."""
    owners = [(f"leaders ({leader.id})", leader.channels) for leader in district.leaders]
    for unit in district.units:
        owners.append((f"units ({unit.id})", unit.channels))
        owners.extend((f"units ({unit.id}) contact {contact.name}", contact.channels) for contact in unit.contacts)
    owners.append(("fallback", notify.fallback))
    for owner, channels in owners:
        for channel in channels:
            if channel.type == "email" and notify.smtp is None:
                raise _fail(path, "smtp", f"{owner} has an e-mail channel, but no SMTP server is configured")
            if channel.type == "sms" and notify.sms_gateway is None:
                raise _fail(path, "sms_gateway", f"{owner} has an SMS channel, but no SMS gateway is configured")
    if notify.escalation is not None:
        for index, rule in enumerate(notify.escalation.rules):
            if rule.category and rule.category not in category_codes:
                raise _fail(path, f"escalation.rules[{index}]", f"category {rule.category!r} is not in categories.yaml")
