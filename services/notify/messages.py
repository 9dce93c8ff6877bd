"""Messages staff read (Chinese), rendered from Jinja2 templates; personal data is masked in every one.

One template per kind of message: a new ticket (新工单), one to dispatch by hand (待人工派单), returned (退单改派),
reopened (工单反弹), other transitions (工单动态), a reminder before a deadline (到期提醒), the missed deadline
(工单超期), an escalation step (超期升级) and a digest of several messages (消息汇总).

Every time in a message is the district's (``local_time``), never UTC — including an instant another service wrote
into a note (e.g. 同意延期至 2026-11-27T09:30:00+00:00, as triage notes a granted extension).

Every message links to the workbench (工单处置工作台, served by reporting at ``public_base_url``): a message about a
ticket to ``/workbench/tickets/<ticket id>``, where the ticket is signed for and handled; a digest or a summary of
several to ``/workbench``. A link carries the ticket's id and nothing else: the page shows the rest only to a person
who signs in and may see it (civicbus/privacy.py).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from civicbus.district import District, Leader, LeaderRole
from civicbus.events import PENDING_STATES, EventKind, Severity, Ticket, TicketEvent, TicketState
from civicbus.privacy import mask_personal_data

SEVERITY_NAMES = {Severity.low: "一般", Severity.normal: "普通", Severity.high: "紧急", Severity.critical: "特急"}
DIGEST_LINES = 50
# An ISO 8601 instant with its offset (or Z), as events carry them; a time without one says no instant to convert.
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})")
DEADLINE_NAMES = {"sign_for": "签收时限", "resolve": "办结时限"}
VIEW, SIGN_FOR = "查看", "签收"  # what a message's button or link says
TITLES = {
    EventKind.ticket_routed: "新工单",
    EventKind.ticket_manual: "待人工派单",
    EventKind.ticket_returned: "退单改派",
    EventKind.ticket_reassigned: "改派工单",
    EventKind.ticket_reopened: "工单反弹",
    EventKind.ticket_supervised: "领导督办",
    EventKind.ticket_overdue: "工单超期",
    EventKind.ticket_callback_recorded: "回访结果",
    EventKind.ticket_extension_decided: "延期审批",
    EventKind.ticket_reminder: "到期提醒",
    EventKind.ticket_escalated: "超期升级",
}


def template_for(kind: EventKind, role: str) -> str:
    """Whoever gets a ticket to handle reads it as a new ticket (or, for the dispatcher, one to dispatch)."""
    if role == "dispatcher":
        return "ticket_manual.j2"
    return {
        EventKind.ticket_routed: "ticket_routed.j2",
        EventKind.ticket_reassigned: "ticket_routed.j2",
        EventKind.ticket_returned: "ticket_returned.j2",
        EventKind.ticket_reopened: "ticket_reopened.j2",
        EventKind.ticket_overdue: "ticket_overdue.j2",
        EventKind.ticket_reminder: "ticket_reminder.j2",
        EventKind.ticket_escalated: "ticket_escalated.j2",
    }.get(kind, "ticket_update.j2")


@dataclass(frozen=True)
class Message:
    """What a channel sends: a title, the text and the workbench page it is about, with the word its button (or
    link) shows — 签收 where the message asks the unit to sign for the ticket (the page is where it does), 查看
    otherwise."""

    title: str
    text: str
    url: str
    button: str = VIEW


def button_for(ticket: Ticket, role: str) -> str:
    """签收 for the lead unit of a ticket still waiting to be signed for (新工单, 改派, 反弹, its reminders and missed
    签收时限); 查看 for everyone else."""
    return SIGN_FOR if role == "lead" and ticket.state in PENDING_STATES["sign_for"] else VIEW


class MessageRenderer:
    def __init__(self, district: District, public_base_url: str) -> None:
        self._district = district
        self._workbench = f"{public_base_url}/workbench"  # NotifySettings gives it without a trailing slash
        self._zone = ZoneInfo(district.timezone)
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
            undefined=jinja2.StrictUndefined,  # a template naming a missing field fails loudly, not with blanks
            autoescape=False,  # plain text for robots, mail and SMS; HTML channels escape on their own
        )
        self._env.filters["local_time"] = self.local_time

    def local_time(self, moment: Any) -> str:
        return moment.astimezone(self._zone).strftime("%m月%d日 %H:%M") if isinstance(moment, datetime) else "—"

    def local_times_in(self, text: str) -> str:
        """``text`` with each instant written in it shown as the district's time."""
        return INSTANT.sub(lambda found: self.local_time(datetime.fromisoformat(found.group())), text)

    def page_url(self, ticket_id: str = "") -> str:
        """A ticket's page in the workbench, its id quoted (whatever it holds); the workbench itself for a message
        about no one ticket (a digest, a summary)."""
        return f"{self._workbench}/tickets/{urllib.parse.quote(ticket_id, safe='')}" if ticket_id else self._workbench

    def unit_name(self, unit_id: str) -> str:
        unit = self._district.units.get(unit_id)
        return unit.name if unit else unit_id

    def render(self, event: TicketEvent, role: str) -> Message:
        return self.render_ticket(event.ticket, event.kind, role, note=event.note)

    def render_ticket(self, ticket: Ticket, kind: EventKind, role: str, note: str = "", **extra: Any) -> Message:
        """A message about one ticket; ``extra`` feeds the reminder and escalation templates (deadline, due, step…)."""
        leader = self._district.leaders.get(ticket.leader)
        headline = TITLES.get(kind, "工单动态")
        if "step" in extra:
            headline = f"{headline}（第{extra['step']}级）"
        text = self._env.get_template(template_for(kind, role)).render(
            district=self._district.name,
            headline=headline,
            note=self.local_times_in(note),
            ticket=ticket,
            role=role,
            severity=SEVERITY_NAMES[ticket.severity],
            lead_name=self.unit_name(ticket.lead_unit),
            assist_names="、".join(self.unit_name(unit) for unit in ticket.assist_units),
            returned_names="、".join(self.unit_name(unit) for unit in ticket.returned_by),
            leader_name=f"{leader.name}（{leader.title}）" if leader else "—",
            deadline_names=DEADLINE_NAMES,
            **extra,
        )
        title = f"【{headline}】{ticket.title}"
        return Message(title=mask_personal_data(title), text=mask_personal_data(text.strip()),
                       url=self.page_url(ticket.ticket_id), button=button_for(ticket, role))

    def render_digest(self, lines: Sequence[str], reason: str, now: datetime) -> Message:
        """Several messages as one (消息汇总): held in quiet hours, or more than a robot may post in a minute. Long
        digests list the first lines and count the rest (robots refuse messages of more than ~20 kB)."""
        text = self._env.get_template("digest.j2").render(
            district=self._district.name, lines=lines[:DIGEST_LINES], more=max(0, len(lines) - DIGEST_LINES),
            total=len(lines), reason=reason, now=now,
        )
        title = f"【消息汇总】共{len(lines)}条"
        return Message(title=title, text=mask_personal_data(text.strip()), url=self.page_url())

    def render_fallback(self, message: Message, recipient: str, error: str) -> Message:
        """What the fallback channel (兜底) receives when a message could not reach its recipient."""
        text = self._env.get_template("fallback.j2").render(
            district=self._district.name, recipient=self.recipient_name(recipient), error=error, message=message,
        )
        return Message(title=f"【通知失败】{message.title}", text=mask_personal_data(text.strip()), url=message.url)

    def render_daily(self, leader: Leader, tickets: Sequence[Ticket], now: datetime, max_listed: int) -> Message:
        """A leader's morning summary (每日汇总) of open tickets, the overdue ones listed first by name."""
        overdue = []
        for ticket in tickets:
            missed = "超期未签收" if _missed(ticket, "sign_for", now) else "超期未办结" if _missed(ticket, "resolve", now) else ""
            if missed:
                overdue.append((ticket, missed))
        day = now.astimezone(self._zone).strftime("%Y年%m月%d日")
        text = self._env.get_template("daily_digest.j2").render(
            district=self._district.name, day=day, leader_name=f"{leader.name}（{leader.title}）",
            scope="全街道" if leader.role is LeaderRole.main else "分管范围内", tickets=tickets,
            waiting=sum(ticket.state is TicketState.routed for ticket in tickets),
            handling=sum(ticket.state is TicketState.acknowledged for ticket in tickets),
            overdue=overdue, max_listed=max_listed,
            unit_names={ticket.lead_unit: self.unit_name(ticket.lead_unit) for ticket in tickets},
        )
        title = f"【每日汇总】在办{len(tickets)}件，超期{len(overdue)}件"
        return Message(title=title, text=mask_personal_data(text.strip()), url=self.page_url())

    def recipient_name(self, recipient: str) -> str:
        if recipient in self._district.units:
            return self._district.units[recipient].name
        leader = self._district.leaders.get(recipient)
        return f"{leader.name}（{leader.title}）" if leader else recipient


def _missed(ticket: Ticket, deadline: str, now: datetime) -> bool:
    due = ticket.due(deadline)
    return ticket.state in PENDING_STATES[deadline] and (deadline in ticket.overdue or (due is not None and due < now))
