"""Triage's decision for one incoming event: what it is, where it is, who handles it, by when — and why.

Pure: it reads only the event and the district configuration, so a replayed event gets the same tickets, and
``civicbus routes test`` shows exactly what the service would do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from civicbus.district import District
from civicbus.events import (
    Alarm,
    Complaint,
    Event,
    EventKind,
    Inspection,
    ResponseLevel,
    RoutingExplanation,
    Ticket,
    TicketState,
    ticket_number,
)

from .classify import Classification, Classifier
from .deadlines import Deadlines, WorkingCalendar, choose_policy, compute_deadlines
from .groups import home_of
from .locate import Located, Locator
from .routing import Assignment, Router
from .routing_config import RoutingFile, load_routing

KIND_LABEL = {
    EventKind.complaint_received: "complaint",
    EventKind.alarm_raised: "alarm",
    EventKind.inspection_reported: "inspection",
}


@dataclass(frozen=True)
class Decision:
    classification: Classification
    located: Located
    labels: dict[str, str]
    tickets: list[Ticket]


class TriageEngine:
    def __init__(self, district: District, routing: RoutingFile | None = None) -> None:
        """``routing``: triage's routing.yaml, read from the district's folder (and cross-checked) unless given —
        like the learned model, so a new engine is triage's whole configuration, loaded again on every change."""
        from .learned import load_district_model  # the model named in categories.yaml, if any (sklearn only then)

        self.district = district
        self.routing = routing if routing is not None else load_routing(district)
        self.classifier = Classifier(district, load_district_model(district))
        self.locator = Locator(district)
        self.router = Router(district, self.routing.route)
        self.calendar = WorkingCalendar(district.deadlines, district.timezone)

    def fingerprint(self, event: Event) -> str:
        """The configured fields of an alarm, joined: repeats with the same fingerprint are one ticket."""
        fields = self.routing.grouping.alarm_fingerprint
        values = {"source": event.source, **event.data.model_dump(include=set(fields))}  # type: ignore[attr-defined]
        return "|".join(str(values[name]) for name in fields)

    @staticmethod
    def text_of(event: Event) -> str:
        """What is classified of an event."""
        data = event.data  # type: ignore[attr-defined]
        return f"{data.title} {data.content}"

    @contextmanager
    def batch(self, events: Iterable[Event]) -> Iterator[None]:
        """Decide a batch of events with one call of the learned model for all of them."""
        if self.classifier.model is None:
            yield
            return
        with self.classifier.model.batch(self.text_of(event) for event in events):
            yield

    def classify(self, event: Event) -> Classification:
        data = event.data  # type: ignore[attr-defined]
        return self.classifier.classify(
            self.text_of(event),
            upstream_code=data.upstream_category if isinstance(data, Complaint) else "",
            alarm_type=data.alarm_type if isinstance(data, Alarm) else "",
            inspection_type=data.inspection_type if isinstance(data, Inspection) else "",
        )

    def labels(self, event: Event, classification: Classification, located: Located) -> dict[str, str]:
        data = event.data  # type: ignore[attr-defined]
        labels = {
            **data.labels,
            "kind": KIND_LABEL[event.kind],
            "source": event.source,
            "severity": str(data.severity),
            "category": classification.code,
            "category_root": classification.code.split(".", 1)[0],
            "area": located.area.unit.id if located.area else "",
        }
        if isinstance(data, Alarm):
            labels["alarm_type"] = data.alarm_type
        if isinstance(data, Inspection):
            labels["inspection_type"] = data.inspection_type
        if isinstance(data, Complaint):
            labels["channel"] = data.channel
        return labels

    def decide(self, event: Event, level: ResponseLevel = ResponseLevel.normal) -> Decision:
        data = event.data  # type: ignore[attr-defined]
        classification = self.classify(event)
        located = self.locator.locate(data.location, data.address, data.content)
        labels = self.labels(event, classification, located)
        low_confidence = self._low_confidence_reason(classification)
        tickets = [
            self._ticket(event, classification, located, labels, assignment, index, low_confidence, level)
            for index, assignment in enumerate(self.router.assign(labels))
        ]
        return Decision(classification, located, labels, tickets)

    def deadlines(self, policy_id: str, level: ResponseLevel, start: datetime) -> Deadlines:
        """The 签收 and 办结 deadlines of a policy counted from ``start``, shortened under 一级响应."""
        settings = self.district.deadlines
        factor = settings.heightened.deadline_factor if level is ResponseLevel.heightened else 1.0
        return compute_deadlines(self.calendar, settings.policies[policy_id], start, factor)

    def _low_confidence_reason(self, classification: Classification) -> str:
        """Why the classification is not sure enough to route by (人工派单原因), or "" when it is: the rules and a
        confident model disagree; the keywords barely decide; or the model alone answered, unsure."""
        evidence = classification.evidence
        path = self.district.category_path
        if classification.disagreement:
            return (
                f"规则与模型分类不一致：规则判定为“{path(classification.code)}”（关键词：{'、'.join(evidence.keywords)}），"
                f"模型判定为“{path(evidence.model_label)}”（概率 {evidence.model_probability:.2f}）"
            )
        min_probability = self.classifier.min_probability
        if evidence.method == "model" and evidence.model_probability < min_probability:
            return (
                f"模型分类概率低（{evidence.model_probability:.2f} < {min_probability:.2f}）：未命中关键词，"
                f"模型判定为“{path(evidence.model_label)}”"
            )
        if evidence.method == "none" and evidence.model_label:
            return (
                f"未命中关键词，模型分类概率低（{evidence.model_probability:.2f} < {min_probability:.2f}）："
                f"模型判定为“{path(evidence.model_label)}”"
            )
        threshold = self.district.categories.min_confidence
        if evidence.method != "keywords" or evidence.confidence >= threshold:
            return ""
        runner_up = path(evidence.runner_up) if evidence.runner_up else "无"
        model = f"；模型判定为“{path(evidence.model_label)}”（概率 {evidence.model_probability:.2f}）" if evidence.model_label else ""
        return (
            f"分类置信度低（{evidence.confidence:.2f} < {threshold:.2f}）：最可能为"
            f"“{path(classification.code)}”，其次为“{runner_up}”{model}"
        )

    def _ticket(
        self,
        event: Event,
        classification: Classification,
        located: Located,
        labels: dict[str, str],
        assignment: Assignment,
        index: int,
        low_confidence: str,
        level: ResponseLevel,
    ) -> Ticket:
        data = event.data  # type: ignore[attr-defined]
        manual_reason = low_confidence or assignment.manual_reason
        lead = "" if manual_reason else assignment.lead_unit
        policy_id = choose_policy(self.district.deadlines, assignment.deadline_policy, data.severity)
        created_at = event.recorded_at.astimezone(self.calendar.zone)
        deadlines = self.deadlines(policy_id, level, created_at)
        resolve_due = deadlines.resolve_due
        if isinstance(data, Complaint) and data.due_at is not None:
            resolve_due = min(resolve_due, data.due_at)  # the upstream platform's deadline binds us
        # One event may make several tickets (routes with `continue`): each gets its own stable number.
        number_seed = event.event_id if index == 0 else f"{event.event_id}#{index}"
        fingerprint = self.fingerprint(event) if isinstance(data, Alarm) else ""
        repeat_key = f"{classification.code}|{located.place}" if isinstance(data, Complaint) and located.place else ""
        return Ticket(
            ticket_id=ticket_number(self.district.code, created_at, number_seed,
                                    home_of(event.event_id, fingerprint, repeat_key)),
            state=TicketState.manual if manual_reason else TicketState.routed,
            event_kind=event.kind,
            event_source=event.source,
            source_event_id=event.event_id,
            external_id=getattr(data, "external_id", ""),
            title=data.title or data.content[:30],
            content=data.content,
            severity=data.severity,
            category=classification.code,
            category_name=self.district.category_path(classification.code),
            area=located.area.unit.id if located.area else "",
            area_name=located.area.name if located.area else "",
            address=data.address,
            location=data.location,
            lead_unit=lead,
            assist_units=list(assignment.assist_units) if lead else [],
            leader=assignment.leader if lead else "",
            deadline_policy=policy_id,
            response_level=level,
            sign_for_due=deadlines.sign_for_due,
            resolve_due=resolve_due,
            created_at=created_at,
            caller_phone=getattr(data, "caller_phone", ""),
            fingerprint=fingerprint,
            repeat_key=repeat_key,
            last_event_at=event.occurred_at,
            amount_involved=getattr(data, "amount", None),
            explanation=RoutingExplanation(
                route_path=assignment.match.names,
                matched=[str(matcher) for matcher in assignment.match.route.parsed_matchers],
                category=classification.evidence,
                location=located.evidence,
                manual_reason=manual_reason,
                labels=labels,
            ),
        )
