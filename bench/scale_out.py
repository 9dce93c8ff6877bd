"""Benchmark: what scale-out buys on this machine, in one run, loopback only.

(a) the store's own ceiling: bulk upserts/s (update commands of 50 operations, by ``_id``) and point reads/s by
    ``_id``, sequential and with N in flight;
(b) a Python consume → produce relay's ceiling on the same broker (aiokafka, batches, acks=all, commit per batch);
(c) end to end through the real services as separate processes (tests/integration/replicas.py): events/s and p99
    latency from submission to the event being visible on ``civic.tickets`` (the ticket's lifecycle event), for an
    alarm storm and for distinct complaints, at 1, 2 and 3 triage replicas, with the five invariants checked.

Bounded in time and count. Run with the dev stack up (``civicbus dev up``):

    .venv/bin/python bench/scale_out.py                       # everything, default sizes
    .venv/bin/python bench/scale_out.py --skip-e2e --store-ops 2000
    .venv/bin/python bench/scale_out.py --replicas 1 2 --alarms 1000 --complaints 300

``--write-in-flight`` (default 50) sets how many 50-op commands are in flight at once. FerretDB v1.24 as released
wedged for good with two (it held a SQLite connection per update until the command ended, from a pool of 100); the
project's build is patched (deploy/ferretdb/patches), and this figure is the check that it holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from pymongo import AsyncMongoClient  # noqa: E402

from ops import devstack  # noqa: E402
from ops.webhook_receiver import WebhookSink  # noqa: E402
from tests.integration.replicas import Cluster, Workload, report, run_scenario  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


# --------------------------------------------------------------------------- (a) the store


async def bench_store(ops: int, read_in_flight: int, write_in_flight: int, seconds: float) -> dict[str, float]:
    client = AsyncMongoClient(devstack.mongo_url(), tz_aware=True, maxPoolSize=max(read_in_flight, write_in_flight),
                              timeoutMS=30_000)
    db_name = f"civicbus_bench_store_{uuid.uuid4().hex[:6]}"
    collection = client[db_name]["docs"]
    results: dict[str, float] = {}
    try:
        commands = [[f"d{index:07d}" for index in range(start, min(start + 50, ops))] for start in range(0, ops, 50)]

        async def upsert(ids: list[str], round_: int) -> None:
            await client[db_name].command({
                "update": "docs", "ordered": False,
                "updates": [{"q": {"_id": doc_id}, "u": {"$set": {"round": round_}, "$addToSet": {"tokens": f"t{round_}"}},
                             "upsert": True} for doc_id in ids],
            })

        async def timed(name: str, jobs: list[Any], in_flight: int, unit: int) -> None:
            gate = asyncio.Semaphore(in_flight)
            deadline = time.perf_counter() + seconds
            done = 0

            async def one(job: Any) -> None:
                nonlocal done
                if time.perf_counter() > deadline:
                    return
                async with gate:
                    if time.perf_counter() > deadline:
                        return
                    await job()
                    done += unit

            started = time.perf_counter()
            await asyncio.gather(*(one(job) for job in jobs))
            results[name] = done / (time.perf_counter() - started)

        await timed("upserts/s sequential (50-op commands)", [lambda ids=ids: upsert(ids, 1) for ids in commands], 1, 50)
        await timed(f"upserts/s {write_in_flight} commands in flight",
                    [lambda ids=ids: upsert(ids, 2) for ids in commands], write_in_flight, 50)
        ids = [f"d{index:07d}" for index in range(ops)]
        await timed("point reads/s sequential", [lambda doc_id=doc_id: collection.find_one({"_id": doc_id})
                                                 for doc_id in ids], 1, 1)
        await timed(f"point reads/s {read_in_flight} in flight",
                    [lambda doc_id=doc_id: collection.find_one({"_id": doc_id}) for doc_id in ids], read_in_flight, 1)
    finally:
        with contextlib.suppress(Exception):
            await client.drop_database(db_name)
        await client.close()
    return results


# --------------------------------------------------------------------------- (b) a relay on the broker


async def bench_relay(records: int, batch: int, seconds: float) -> dict[str, float]:
    bootstrap = devstack.kafka_bootstrap()
    prefix = f"benchrelay{uuid.uuid4().hex[:6]}."
    source, target = f"{prefix}in", f"{prefix}out"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(source, 6, 1), NewTopic(target, 6, 1)])
    results: dict[str, float] = {}
    try:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                                    max_batch_size=262144)
        await producer.start()
        payload = b'{"kind": "alarm.raised", "data": {"content": "' + "烟感报警".encode() * 20 + b'"}}'
        started = time.perf_counter()
        futures = [await producer.send(source, payload, key=str(index % 600).encode()) for index in range(records)]
        await asyncio.gather(*futures)
        results["produce/s (acks=all, idempotent)"] = records / (time.perf_counter() - started)

        consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"{prefix}relay",
                                    enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=batch)
        await consumer.start()
        relayed = 0
        started = time.perf_counter()
        deadline = started + seconds
        first_at = None
        while relayed < records and time.perf_counter() < deadline:
            polled = await consumer.getmany(timeout_ms=500, max_records=batch)
            if not polled:
                continue
            first_at = first_at or time.perf_counter()
            sends = [await producer.send(target, record.value, key=record.key)
                     for partition_records in polled.values() for record in partition_records]
            await asyncio.gather(*sends)
            await consumer.commit()
            relayed += len(sends)
        elapsed = time.perf_counter() - (first_at or started)
        results[f"relay consume→produce/s (batches of {batch}, commit per batch)"] = relayed / elapsed if elapsed else 0
        await consumer.stop()
        await producer.stop()
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics([source, target])
        await admin.close()
    return results


# --------------------------------------------------------------------------- (c) end to end


def latencies(result: Any, kind: str) -> list[tuple[float, float]]:
    """Seconds from submission to the event being visible on civic.tickets (its ticket's creation, the 重复件
    link, or the alarm count reaching it), as (submitted at, seconds) pairs."""
    watcher, driver = result.watcher, result.driver
    found = []
    if kind == "complaint":
        for item in driver.submissions:
            if item.status == 202 and item.kind == "complaint" and item.event_id in watcher.first_seen:
                found.append((item.sent_at, watcher.first_seen[item.event_id] - item.sent_at))
        return found
    ordinal: dict[str, int] = {}
    fingerprints = {fingerprint.split("|", 1)[0]: fingerprint for fingerprint in watcher.alarm_counts}
    for item in sorted((item for item in driver.submissions if item.status == 202 and item.kind == "alarm"),
                       key=lambda item: item.answered_at):
        device = item.group.split(":", 1)[1]
        ordinal[device] = ordinal.get(device, 0) + 1
        fingerprint = fingerprints.get(device)
        seen = watcher.alarm_visible_at(fingerprint, ordinal[device]) if fingerprint else None
        if seen is not None:
            found.append((item.sent_at, max(0.0, seen - item.sent_at)))
    return found


async def bench_e2e(replicas: list[int], alarms: int, complaints: int, rate: float, concurrency: int
                    ) -> list[dict[str, Any]]:
    rows = []
    for count in replicas:
        for scenario, workload in (
            ("alarm storm", Workload(repeat_groups=0, alarms=alarms, sensors=6, distinct=0, commands=0, rate=rate,
                                     concurrency=concurrency)),
            ("distinct complaints", Workload(repeat_groups=0, alarms=0, distinct=complaints, commands=0, rate=rate,
                                             concurrency=concurrency)),
        ):
            sink = await WebhookSink().start()
            cluster = Cluster(sink)
            try:
                result = await run_scenario(cluster, workload, {"intake": 1, "triage": count, "notify": 1,
                                                                "reporting": 1}, settle_timeout=180)
                kind = "alarm" if scenario == "alarm storm" else "complaint"
                pairs = latencies(result, kind)
                waits = [wait for _, wait in pairs]
                accepted = sum(1 for item in result.driver.submissions if item.status == 202)
                visible = max((sent_at + wait for sent_at, wait in pairs), default=result.started_at)
                span = max(visible - result.started_at, 1e-9)
                row = {"triage": count, "scenario": scenario, "accepted": accepted,
                       "events/s": accepted / span, "p50 s": percentile(waits, 0.5), "p99 s": percentile(waits, 0.99),
                       "visible": len(waits), "invariants": "OK" if all(v.ok for v in result.verdicts) else
                       "FAIL " + "".join(v.name for v in result.verdicts if not v.ok)}
                rows.append(row)
                print(f"  {row}")
                if not all(v.ok for v in result.verdicts):
                    print(report(result.verdicts, limit=5))
            finally:
                await cluster.stop()
                await sink.stop()
                await cluster.destroy()
    return rows


async def main(args: argparse.Namespace) -> None:
    await asyncio.to_thread(devstack.up)
    if not args.skip_store:
        print("(a) store ceiling (FerretDB on loopback)")
        for name, value in (await bench_store(args.store_ops, args.read_in_flight, args.write_in_flight,
                                              args.seconds)).items():
            print(f"  {name:<45} {value:>10,.0f}")
    if not args.skip_relay:
        print("(b) Python relay on the broker")
        for name, value in (await bench_relay(args.relay_records, args.relay_batch, args.seconds)).items():
            print(f"  {name:<60} {value:>10,.0f}")
    if not args.skip_e2e:
        print("(c) end to end (separate processes; submission → visible on civic.tickets)")
        rows = await bench_e2e(args.replicas, args.alarms, args.complaints, args.rate, args.concurrency)
        print(f"  {'triage':>6} {'scenario':<20} {'accepted':>8} {'events/s':>9} {'p50 s':>7} {'p99 s':>7} invariants")
        for row in rows:
            print(f"  {row['triage']:>6} {row['scenario']:<20} {row['accepted']:>8} {row['events/s']:>9.0f} "
                  f"{row['p50 s']:>7.2f} {row['p99 s']:>7.2f} {row['invariants']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store-ops", type=int, default=5000, help="documents upserted, then read")
    parser.add_argument("--read-in-flight", type=int, default=50)
    parser.add_argument("--write-in-flight", type=int, default=50, help="50-op commands in flight (see above)")
    parser.add_argument("--relay-records", type=int, default=50_000)
    parser.add_argument("--relay-batch", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=20.0, help="time bound of each store / relay measurement")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3], help="triage replicas to measure")
    parser.add_argument("--alarms", type=int, default=1200, help="alarms of the storm (6 sensors)")
    parser.add_argument("--complaints", type=int, default=300, help="distinct complaints")
    parser.add_argument("--rate", type=float, default=400.0, help="submissions per second offered to intake")
    parser.add_argument("--concurrency", type=int, default=32, help="HTTP requests in flight to intake")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--skip-relay", action="store_true")
    parser.add_argument("--skip-e2e", action="store_true")
    asyncio.run(main(parser.parse_args()))
