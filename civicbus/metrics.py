"""Every Prometheus metric of civicbus, declared once.

Label values come from small fixed sets (service names, topic names, outcomes, error kinds) so that series stay
few; never put an id or free text in a label.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "civicbus_events_consumed_total",
    "Kafka records consumed, by outcome: processed, duplicate (already applied), dead_lettered",
    ["service", "topic", "outcome"],
)
EVENTS_PRODUCED = Counter(
    "civicbus_events_produced_total",
    "Kafka records produced and acknowledged by the broker (acks=all), or failed",
    ["service", "topic", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "civicbus_handler_seconds",
    "Time to process one consumed batch, from decode to the last write",
    ["service", "topic"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "civicbus_batch_records",
    "Records per consumed batch",
    ["service", "topic"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
BATCH_RETRIES = Counter(
    "civicbus_batch_retries_total",
    "Batches read again after a failure of Kafka or MongoDB (nothing was committed)",
    ["service", "topic", "error"],
)
CONSUMER_LAG = Gauge(
    "civicbus_consumer_lag",
    "Records on a partition not yet committed by the consumer group (end offset − committed offset)",
    ["service", "group", "topic", "partition"],
)
CONSUMER_HALTED = Gauge(
    "civicbus_consumer_halted",
    "1 while a consumer is stopped by its DLQ limit (it dead-lettered too much; nothing is committed)",
    ["service", "topic"],
)
HTTP_REQUESTS = Counter(
    "civicbus_http_requests_total",
    "HTTP requests answered, by route template and status class",
    ["service", "route", "status"],
)


class OwnMetric:
    """A metric only one service records, with its ``service`` label fixed: call sites give the other labels
    (``TICKETS_ROUTED.labels("routed")``), and every civicbus series still says which service it came from."""

    def __init__(self, metric: Counter | Gauge | Histogram, service: str) -> None:
        self.metric = metric
        self.service = service

    def labels(self, *values: str, **named: str) -> Any:
        if named:
            return self.metric.labels(service=self.service, **named)
        return self.metric.labels(self.service, *values)


TICKETS_ROUTED = OwnMetric(Counter(
    "civicbus_tickets_routed_total",
    "Tickets triage created, by outcome: routed to a unit (派单) or manual (人工派单)",
    ["service", "outcome"],
), "triage")
TICKETS_OVERDUE = OwnMetric(Counter(
    "civicbus_tickets_overdue_total",
    "Missed deadlines (超期) the overdue sweep published, by deadline: sign_for (签收) or resolve (办结)",
    ["service", "deadline"],
), "triage")
CALENDAR_HOLIDAYS_KNOWN = OwnMetric(Gauge(
    "civicbus_calendar_holidays_known",
    "1 when the working calendar knows the statutory holidays (法定节假日与调休) of the year, 0 when it would count "
    "Monday to Friday; year_offset 0 is the current year, 1 the next",
    ["service", "year", "year_offset"],
), "triage")
NOTIFICATIONS = OwnMetric(Counter(
    "civicbus_notifications_total",
    "Notifications by channel and outcome: delivered, failed, duplicate (already sent), held (for a digest), "
    "unconfirmed",
    ["service", "channel", "outcome"],
), "notify")
NOTIFICATION_ATTEMPTS = OwnMetric(Counter(
    "civicbus_notification_attempts_total",
    "Delivery attempts by channel and result (ok, http_error, timeout, connect_error, rejected, rate_limited)",
    ["service", "channel", "result"],
), "notify")
NOTIFY_TIMERS_DONE = OwnMetric(Gauge(
    "civicbus_notify_timers_done_timestamp_seconds",
    "Unix time up to which a civic.tickets partition's due timers (retries, reminders, escalations, held digests) "
    "were handled by its owner: time() minus it is the age of the oldest due notification not yet sent",
    ["service", "partition"],
), "notify")
DEPENDENCY_UP = Gauge(
    "civicbus_dependency_up",
    "1 while a dependency answers the service's periodic check (kafka, mongo), 0 when it does not",
    ["service", "dependency"],
)
SERVICE_READY = Gauge(
    "civicbus_ready",
    "1 while the service is ready (what /readyz answers: Kafka and MongoDB answer, no consumer halted), else 0",
    ["service"],
)
SERVICE_UP = Gauge("civicbus_service_info", "Constant 1, labelled with the service and its version", ["service", "version"])
