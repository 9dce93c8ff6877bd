"""What a person sees of the tickets and may do to them (pure): the tabs of their role and which tickets are in
each, the list items, the actions a ticket's state allows them, and the Chinese names of it all.

Tabs are computed from the ticket views (state, lead and assisting units, deadlines, pending extension) as of
``now``: one query fetches the tickets the person may see, and every tab is counted from that in Python (FerretDB
v1 filters by scanning anyway; a sub-district holds thousands of tickets, not millions).

The actions offered are the ones triage's state machine (``services/triage/lifecycle.py``) would accept from this
person in this state — offered, not decided: every action still goes through intake to the state machine, which
may refuse it (a date too early, a missing reason) and says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from civicbus.district import District, LeaderRole
from civicbus.events import OPEN_STATES, STATE_NAMES, EventKind, TicketState

from .accounts import Account, PersonRole

DUE_SOON = timedelta(hours=24)
"""即将超期: the resolve deadline (办结时限) falls within the next 24 hours and has not passed yet."""

TAB_NAMES = {
    "manual": "人工派单",
    "returned": "已退回",
    "pending_sign": "待签收",
    "in_progress": "办理中",
    "due_soon": "即将超期",
    "overdue": "已超期",
    "resolved": "已办结",
    "callback": "待回访",
    "extensions": "延期待审批",
    "supervision": "督办",
}
_UNIT_TABS = ["pending_sign", "in_progress", "due_soon", "overdue", "resolved"]
ROLE_TABS: dict[PersonRole, list[str]] = {
    PersonRole.staff: ["pending_sign", "in_progress", "due_soon", "overdue", "returned", "resolved"],
    PersonRole.dispatcher: ["manual", "returned", *_UNIT_TABS],
    PersonRole.callback: ["callback"],
    PersonRole.leader: ["extensions", "supervision"],
    PersonRole.admin: ["manual", "returned", *_UNIT_TABS, "callback", "extensions", "supervision"],
}

ACTION_NAMES = {
    "sign_for": "签收",
    "return": "退单",
    "request_extension": "申请延期",
    "add_note": "进展",
    "resolve": "办结",
    "assist_feedback": "协办意见",
    "assign": "派单",
    "reassign": "改派",
    "record_callback": "回访",
    "decide_extension": "延期审批",
    "supervise": "督办",
}
DONE_MESSAGES = {
    "sign_for": "已签收",
    "return": "已退单",
    "request_extension": "已提交延期申请",
    "add_note": "已添加进展",
    "resolve": "已办结",
    "assist_feedback": "已提交协办意见",
    "assign": "已派单",
    "reassign": "已改派",
    "record_callback": "已记录回访",
    "decide_extension": "已审批延期申请",
    "supervise": "已督办",
}
ROLE_ACTIONS: dict[PersonRole, frozenset[str]] = {
    PersonRole.staff: frozenset({"sign_for", "return", "request_extension", "add_note", "resolve",
                                 "assist_feedback"}),
    PersonRole.dispatcher: frozenset({"assign", "reassign", "decide_extension", "add_note"}),
    PersonRole.callback: frozenset({"record_callback", "add_note"}),
    PersonRole.leader: frozenset({"decide_extension", "supervise", "add_note"}),
    PersonRole.admin: frozenset(set(ACTION_NAMES) - {"assist_feedback"}),
}
"""What each role may ever ask for (else 403); whether the ticket's state allows it is the state machine's to say."""

KIND_NAMES = {
    EventKind.ticket_routed: "派单",
    EventKind.ticket_manual: "转人工派单",
    EventKind.ticket_grouped: "合并",
    EventKind.ticket_acknowledged: "签收",
    EventKind.ticket_returned: "退单",
    EventKind.ticket_extension_requested: "申请延期",
    EventKind.ticket_extension_decided: "延期审批",
    EventKind.ticket_note_added: "办理进展",
    EventKind.ticket_resolved: "办结",
    EventKind.ticket_callback_recorded: "回访",
    EventKind.ticket_supervised: "督办",
    EventKind.ticket_reopened: "重新打开",
    EventKind.ticket_reassigned: "改派",
    EventKind.ticket_overdue: "超期",
    EventKind.ticket_command_refused: "操作被拒",
}

_OPEN = {str(state) for state in OPEN_STATES}
_HANDLING = {str(TicketState.routed), str(TicketState.acknowledged)}  # where the deadlines still run
_DONE = {str(TicketState.resolved), str(TicketState.closed)}


@dataclass(frozen=True)
class Viewer:
    """A signed-in person as the tabs and actions see them."""

    role: PersonRole
    unit: str = ""
    leader: str = ""
    main_leader: bool = False
    units_in_charge: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, account: Account, district: District) -> Viewer:
        leader = district.leaders.get(account.leader) if account.role is PersonRole.leader else None
        return cls(account.role, account.unit, account.leader,
                   main_leader=leader is not None and leader.role is LeaderRole.main,
                   units_in_charge=frozenset(unit.id for unit in district.units.values()
                                             if leader is not None and unit.leader == leader.id))


def scope_query(viewer: Viewer) -> dict[str, Any]:
    """The ticket views this person's lists draw from: a 承办人's unit's (lead or assisting); an in-charge leader's
    lines (the tickets they are the leader of, or whose lead unit is in their charge); everything for the others."""
    clauses: list[dict[str, Any]] = [{"state": {"$exists": True}}]
    if viewer.role is PersonRole.staff:
        clauses.append({"$or": [{"lead_unit": viewer.unit}, {"assist_units": viewer.unit}]})
    elif viewer.role is PersonRole.leader and not viewer.main_leader:
        clauses.append({"$or": [{"leader": viewer.leader}, {"lead_unit": {"$in": sorted(viewer.units_in_charge)}}]})
    return {"$and": clauses}


def may_see(viewer: Viewer, view: Mapping[str, Any]) -> bool:
    """A ticket's detail, files and actions: a 承办人 only their unit's (lead or assisting) — another unit's is
    answered as if it did not exist; everyone else every ticket, as the leaders' API lets leaders read."""
    if viewer.role is not PersonRole.staff:
        return True
    return viewer.unit == view.get("lead_unit") or viewer.unit in view.get("assist_units", [])


def is_late(view: Mapping[str, Any], now: datetime) -> bool:
    """Past a deadline it still has to meet: 办结 for a ticket being handled, 签收 for one not signed for."""
    if view.get("state") not in _HANDLING:
        return False
    resolve_due, sign_due = view.get("resolve_due"), view.get("sign_for_due")
    return (resolve_due is not None and resolve_due < now) or (
        view.get("state") == TicketState.routed and sign_due is not None and sign_due < now)


def in_tab(tab: str, view: Mapping[str, Any], viewer: Viewer, now: datetime) -> bool:
    state = view.get("state")
    own = viewer.role is PersonRole.staff
    leads = not own or view.get("lead_unit") == viewer.unit
    if tab == "manual":
        return state == TicketState.manual
    if tab == "returned":
        if own:  # sent back to the unit to handle again after an unsatisfied callback (退回重办)
            return state in _HANDLING and view.get("rework_count", 0) > 0
        return state in _OPEN and bool(view.get("returned_by"))  # units returned it (退单): where did it go?
    if tab == "pending_sign":
        return state == TicketState.routed and leads
    if tab == "in_progress":
        return state == TicketState.acknowledged or (state == TicketState.routed and not leads)
    if tab == "due_soon":
        due = view.get("resolve_due")
        return state in _HANDLING and due is not None and now <= due < now + DUE_SOON
    if tab == "overdue":
        return is_late(view, now)
    if tab == "resolved":
        return state in _DONE
    if tab == "callback":  # every resolved ticket awaits its callback; the callback closes or reopens it
        return state == TicketState.resolved
    if tab == "extensions":
        return view.get("pending_extension") is not None
    if tab == "supervision":
        return state in _OPEN
    raise ValueError(f"unknown tab {tab!r}")


def _far_future(view: Mapping[str, Any]) -> tuple[int, float]:
    due = view.get("resolve_due")
    return (0, due.timestamp()) if due is not None else (1, 0.0)


def ordered(tab: str, views: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Overdue and supervision lists late first (the longest late first), then by the resolve deadline; due-soon by
    the deadline; the rest newest first."""
    if tab in ("overdue", "supervision"):
        return sorted(views, key=lambda view: (not is_late(view, now), _far_future(view)))
    if tab == "due_soon":
        return sorted(views, key=_far_future)
    return sorted(views, key=lambda view: view.get("created_at") or now, reverse=True)


def tab_contents(viewer: Viewer, views: Iterable[dict[str, Any]], now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Each of the person's tabs with its tickets, in the tab's order."""
    views = list(views)
    return {tab: ordered(tab, [view for view in views if in_tab(tab, view, viewer, now)], now)
            for tab in ROLE_TABS[viewer.role]}


def allowed_actions(viewer: Viewer, view: Mapping[str, Any], now: datetime) -> list[str]:
    """The actions to offer this person on this ticket now, in the order a page shows them."""
    state = view.get("state")
    role = viewer.role
    admin = role is PersonRole.admin
    leads = admin or (role is PersonRole.staff and viewer.unit == view.get("lead_unit"))
    assists = role is PersonRole.staff and not leads and viewer.unit in view.get("assist_units", [])
    pending = view.get("pending_extension") is not None
    resolve_due = view.get("resolve_due")
    offered = {
        "sign_for": state == TicketState.routed and leads,
        "return": state in _HANDLING and leads,
        "request_extension": state in _HANDLING and leads and not pending
                             and (resolve_due is None or now < resolve_due),
        "add_note": state != TicketState.closed and not assists and (leads or role is not PersonRole.staff),
        "resolve": state == TicketState.acknowledged and leads,
        "assist_feedback": state != TicketState.closed and assists,
        "assign": state == TicketState.manual,
        "reassign": state in _HANDLING,
        "record_callback": state == TicketState.resolved,
        "decide_extension": pending,
        "supervise": state != TicketState.closed,
    }
    return [action for action, allowed in offered.items() if allowed and action in ROLE_ACTIONS[role]]


def state_name(state: str) -> str:
    return next((name for known, name in STATE_NAMES.items() if known == state), state)


def local_time(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return moment.astimezone(zone).isoformat() if moment is not None else None


def list_item(view: Mapping[str, Any], unit_name: Callable[[str], str], zone: ZoneInfo) -> dict[str, Any]:
    state = view["state"]
    extension = view.get("pending_extension")
    return {
        "ticket_id": view["ticket_id"],
        "title": view.get("title", ""),
        "category": view.get("category", ""),
        "category_name": view.get("category_name", ""),
        "area": view.get("area", ""),
        "area_name": view.get("area_name", ""),
        "state": state,
        "state_name": state_name(state),
        "lead_unit": view.get("lead_unit", ""),
        "lead_unit_name": unit_name(view.get("lead_unit", "")) if view.get("lead_unit") else "",
        "assist_units": list(view.get("assist_units", [])),
        "created_at": local_time(view.get("created_at"), zone),
        "sign_due": local_time(view.get("sign_for_due"), zone),
        "resolve_due": local_time(view.get("resolve_due"), zone),
        "overdue": list(view.get("overdue", [])),
        "severity": view.get("severity", ""),
        "pending_extension": None if extension is None else {
            "until": local_time(extension["until"], zone), "reason": extension.get("reason", ""),
            "requested_by": extension.get("requested_by", "")},
    }


_CATEGORY_METHODS = {"upstream_code": "上游分类代码", "alarm_type": "告警类型", "inspection_type": "巡查类型",
                     "keywords": "关键词", "model": "分类模型", "none": "未能识别"}
_LOCATION_METHODS = {"polygon": "坐标落在辖区范围内", "address": "地址匹配", "none": "未能定位"}


def explanation_lines(view: Mapping[str, Any]) -> list[str]:
    """Why the ticket came to its unit (派单依据), as sentences staff read."""
    explanation = view.get("explanation") or {}
    category = explanation.get("category") or {}
    location = explanation.get("location") or {}
    lines = []
    if explanation.get("route_path"):
        lines.append("派单规则：" + " › ".join(explanation["route_path"]))
    if explanation.get("matched"):
        lines.append("匹配条件：" + "，".join(explanation["matched"]))
    if category:
        basis = _CATEGORY_METHODS.get(category.get("method", ""), category.get("method", ""))
        keywords = "、".join(category.get("keywords", []))
        lines.append(f"事项分类：{view.get('category_name', '')}（依据{basis}{'：' + keywords if keywords else ''}，"
                     f"置信度 {category.get('confidence', 0):.2f}）")
        if category.get("model_label"):
            lines.append(f"模型判断：{category['model_label']}（概率 {category.get('model_probability', 0):.2f}）")
    if location:
        basis = _LOCATION_METHODS.get(location.get("method", ""), location.get("method", ""))
        detail = location.get("detail", "")
        lines.append(f"属地：{view.get('area_name') or '未知'}（{basis}{'：' + detail if detail else ''}）")
    if explanation.get("manual_reason"):
        lines.append(f"转人工派单原因：{explanation['manual_reason']}")
    return lines


def timeline_entry(entry: Mapping[str, Any], zone: ZoneInfo) -> dict[str, Any]:
    kind = entry.get("kind", "")
    try:
        kind_name = KIND_NAMES.get(EventKind(kind), kind)
    except ValueError:
        kind_name = kind
    return {**entry, "at": local_time(entry.get("at"), zone), "kind_name": kind_name,
            "state_name": state_name(entry.get("state", ""))}
