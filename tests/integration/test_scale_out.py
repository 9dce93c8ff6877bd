"""Scale-out proof: every service correct with N replicas, one of them crashing mid-load.

1 intake, 2 triage, 2 notify and 2 reporting run as separate OS processes on one topic prefix and one database,
with a real webhook receiver for every robot. Through intake's HTTP API the test sends, concurrently, repeat
complaints in groups (same category and place, in bursts), alarm storms (many alarms of a few sensors), distinct
complaints, and unit commands on the tickets as they appear; it kills -9 one triage replica mid-load, then one notify
and one reporting replica. Once the system is quiet (every consumer group's lag zero, counts still), it checks the
five invariants on what the public surfaces show (see tests/integration/replicas.py):

(a) every accepted event is on a ticket exactly once (source, 重复件, or an alarm join counted in event_count), or
    a dead letter with its reason;
(b) one open ticket per alarm fingerprint and per repeat group;
(c) every reporting counter equals a recount from triage's tickets;
(d) no message delivered twice to the webhook receiver;
(e) every command answered 200 is applied exactly once on its ticket.

Sized to finish in about two minutes on a 2-core machine; SCALE_OUT_* environment variables resize it.
"""

from __future__ import annotations

import os

import pytest

from ops.webhook_receiver import WebhookSink

from .replicas import Cluster, Workload, report, run_scenario

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


def _size(name: str, default: int) -> int:
    return int(os.environ.get(f"SCALE_OUT_{name.upper()}", default))


WORKLOAD = Workload(
    repeat_groups=_size("repeat_groups", 30),
    per_group=_size("per_group", 5),
    alarms=_size("alarms", 600),
    sensors=_size("sensors", 6),
    distinct=_size("distinct", 60),
    commands=_size("commands", 60),
    rate=float(_size("rate", 40)),
)
REPLICAS = {"intake": 1, "triage": 2, "notify": 2, "reporting": 2}
# kill -9 at these shares of the submissions sent
KILLS = [(0.35, "triage-2"), (0.55, "notify-2"), (0.7, "reporting-2")]


async def test_every_service_is_correct_with_two_replicas_and_a_crash() -> None:
    sink = await WebhookSink().start()
    cluster = Cluster(sink)
    try:
        result = await run_scenario(cluster, WORKLOAD, REPLICAS, KILLS)
        print(result.summary())
        outcome = report(result.verdicts)
        print(outcome)
        assert not cluster.unexpected_exits(), "\n".join(cluster.unexpected_exits())
        assert all(verdict.ok for verdict in result.verdicts), f"{result.summary()}\n{outcome}"
    finally:
        await cluster.stop()
        await sink.stop()
        await cluster.destroy()
