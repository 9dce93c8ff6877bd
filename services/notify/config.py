"""Notify's own configuration: ``notify.yaml`` (mail server, SMS gateway, fallback, quiet hours, reminders,
escalation, daily digest) and the channels district.yaml gives units, contacts and leaders, each validated against
its channel's schema in services/notify/channels/.

Only notify reads these, so their schemas live here: a new channel or escalation option is added in notify alone.
The kernel carries each channel as a type and settings (civicbus.district.ChannelRef); what notify.yaml names in the
shared files (categories) is checked by civicbus.references. Loaded at start-up and again whenever the configuration
folder changes, so a broken file stops notify or leaves the configuration in force, naming the file, the entry and
the problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, TypeAdapter, field_validator, model_validator

from civicbus import references
from civicbus.district import (
    SUPPORTED_VERSION,
    ChannelRef,
    District,
    Identifier,
    Strict,
    config_error,
    load_config_file,
    validate_entry,
)

from .channels import Channel
from .channels.email import SmtpServer
from .channels.sms import SmsGateway

NOTIFY_FILE = "notify.yaml"
CHANNEL_SCHEMA: TypeAdapter[Channel] = TypeAdapter(Channel)

DeadlineName = Literal["sign_for", "resolve"]


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


@dataclass(frozen=True)
class NotifyConfig:
    """What notify holds beside the district: its notify.yaml, and each recipient's channels as notify's own
    channel settings (a unit's with its contacts' personal ones, or a leader's)."""

    file: NotifyFile
    recipient_channels: Mapping[str, tuple[Channel, ...]]

    def channels_of(self, recipient: str) -> tuple[Channel, ...]:
        try:
            return self.recipient_channels[recipient]
        except KeyError:
            raise KeyError(f"recipient {recipient!r} is neither a unit nor a leader of this configuration") from None


def load_notify_config(district: District) -> NotifyConfig:
    """notify.yaml of the district's folder (its defaults when there is none) and every channel of district.yaml,
    validated; the channels need their server, the escalation rules their categories, so that no message fails
    for want of configuration."""
    path = district.folder / NOTIFY_FILE
    file = load_config_file(NotifyFile, path) if path.is_file() else NotifyFile(version=SUPPORTED_VERSION)
    district_path = district.folder / "district.yaml"
    recipients: dict[str, tuple[Channel, ...]] = {}
    named: list[tuple[str, Channel]] = []  # where each channel is configured, for the server checks

    def channels(entry: str, refs: Sequence[ChannelRef]) -> tuple[Channel, ...]:
        found = []
        for index, ref in enumerate(refs):
            where = f"{entry}.channels[{index}]"
            channel = validate_entry(CHANNEL_SCHEMA, district_path, where, ref.model_dump())
            named.append((f"district.yaml {where}", channel))
            found.append(channel)
        return tuple(found)

    for index, leader in enumerate(district.leaders.values()):
        recipients[leader.id] = channels(f"leaders[{index}] ({leader.id})", leader.channels)
    for index, unit in enumerate(district.units.values()):
        entry = f"units[{index}] ({unit.id})"
        recipients[unit.id] = (*channels(entry, unit.channels), *(
            channel for number, contact in enumerate(unit.contacts)
            for channel in channels(f"{entry}.contacts[{number}] ({contact.name})", contact.channels)))
    named.extend((f"fallback[{index}]", channel) for index, channel in enumerate(file.fallback))
    _check_servers(path, file, named)
    if file.escalation is not None:
        for index, rule in enumerate(file.escalation.rules):
            if rule.category:
                references.require_category(district, path, f"escalation.rules[{index}]", rule.category)
    return NotifyConfig(file, recipients)


def _check_servers(path: Path, file: NotifyFile, named: list[tuple[str, Channel]]) -> None:
    for where, channel in named:
        if channel.type == "email" and file.smtp is None:
            raise config_error(path, "smtp", f"{where} is an e-mail channel, but no SMTP server is configured")
        if channel.type == "sms" and file.sms_gateway is None:
            raise config_error(path, "sms_gateway", f"{where} is an SMS channel, but no SMS gateway is configured")
