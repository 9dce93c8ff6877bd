"""Messages staff read (Chinese), rendered from Jinja2 templates; personal data is masked in every one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from civicbus.district import District
from civicbus.events import EventKind, Severity, TicketEvent
from civicbus.logs import mask_personal_data

SEVERITY_NAMES = {Severity.low: "一般", Severity.normal: "普通", Severity.high: "紧急", Severity.critical: "特急"}
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
}


def template_for(event: TicketEvent, role: str) -> str:
    """Whoever gets a ticket to handle reads it as a new ticket (or, for the dispatcher, one to dispatch)."""
    if role == "dispatcher":
        return "ticket_manual.j2"
    if event.kind in (EventKind.ticket_routed, EventKind.ticket_returned, EventKind.ticket_reassigned,
                      EventKind.ticket_reopened):
        return "ticket_routed.j2"
    return "ticket_update.j2"


@dataclass(frozen=True)
class Message:
    title: str
    text: str


class MessageRenderer:
    def __init__(self, district: District) -> None:
        self._district = district
        zone = ZoneInfo(district.timezone)
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
            undefined=jinja2.StrictUndefined,  # a template naming a missing field fails loudly, not with blanks
            autoescape=False,  # plain text for robots, mail and SMS; HTML channels escape on their own
        )
        self._env.filters["local_time"] = lambda moment: (
            moment.astimezone(zone).strftime("%m月%d日 %H:%M") if isinstance(moment, datetime) else "—"
        )

    def unit_name(self, unit_id: str) -> str:
        unit = self._district.units.get(unit_id)
        return unit.name if unit else unit_id

    def render(self, event: TicketEvent, role: str) -> Message:
        ticket = event.ticket
        leader = self._district.leaders.get(ticket.leader)
        text = self._env.get_template(template_for(event, role)).render(
            district=self._district.name,
            headline=TITLES.get(event.kind, "工单动态"),
            note=event.note,
            ticket=ticket,
            role=role,
            severity=SEVERITY_NAMES[ticket.severity],
            lead_name=self.unit_name(ticket.lead_unit),
            assist_names="、".join(self.unit_name(unit) for unit in ticket.assist_units),
            leader_name=f"{leader.name}（{leader.title}）" if leader else "—",
        )
        title = f"【{TITLES.get(event.kind, '工单动态')}】{ticket.title}"
        return Message(title=mask_personal_data(title), text=mask_personal_data(text.strip()))
