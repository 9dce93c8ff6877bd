"""Every Prometheus metric of civicbus, declared once.

Label values come from small fixed sets (service names, topic names, outcomes, error kinds) so that series stay
few; never put an id or free text in a label.
"""

from __future__ import annotations

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
TICKETS_ROUTED = Counter(
    "civicbus_tickets_routed_total",
    "Tickets triage created, by outcome: routed to a unit (派单) or manual (人工派单)",
    ["outcome"],
)
NOTIFICATIONS = Counter(
    "civicbus_notifications_total",
    "Notifications by channel and outcome: delivered, failed, duplicate (already sent), held (for a digest)",
    ["channel", "outcome"],
)
NOTIFICATION_ATTEMPTS = Counter(
    "civicbus_notification_attempts_total",
    "Delivery attempts by channel and result (ok, http_error, timeout, connect_error, rejected, rate_limited)",
    ["channel", "result"],
)
SERVICE_UP = Gauge("civicbus_service_info", "Constant 1, labelled with the service and its version", ["service", "version"])
