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
TEMPLATES = {EventKind.ticket_routed: "ticket_routed.j2", EventKind.ticket_manual: "ticket_manual.j2"}
TITLES = {EventKind.ticket_routed: "新工单", EventKind.ticket_manual: "待人工派单"}


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
        text = self._env.get_template(TEMPLATES[event.kind]).render(
            district=self._district.name,
            ticket=ticket,
            role=role,
            severity=SEVERITY_NAMES[ticket.severity],
            lead_name=self.unit_name(ticket.lead_unit),
            assist_names="、".join(self.unit_name(unit) for unit in ticket.assist_units),
            leader_name=f"{leader.name}（{leader.title}）" if leader else "—",
        )
        title = f"【{TITLES[event.kind]}】{ticket.title}"
        return Message(title=mask_personal_data(title), text=mask_personal_data(text.strip()))
