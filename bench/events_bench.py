"""Events benchmark: inbound ingestion through a real uvicorn, and the outbox relay's lag.

Creates a throwaway database (migrated with Alembic, like the tests), seeds 1,000 mentors x
20,000 mentees (20 each, all assigned), starts the API under uvicorn and measures:

1. ingestion: `--clients` concurrent clients POST batches of 100 `mission.submitted` events
   (random mentees) for `--seconds` (default 60) -> events/s, request latency;
2. single events: the same with one event per request (`--single-seconds`);
3. relay: a relay process (`python -m app.services.events.relay`) running while the producer writes
   outbound events at `--rate` (200/s) in committed transactions; lag = XADD time (the
   Redis stream entry id's milliseconds) - commit time (taken when COMMIT returned)
   -> p50/p95/p99/max. Also the relay's drain rate over the ingestion backlog.

    python -m bench.events_bench [--seconds 60] [--clients 4] [--api-workers 1]

Environment: TEST_DATABASE_URL (a server and superuser that may create databases, default
postgresql://postgres@127.0.0.1:5432/test), TEST_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

from app.config import get_settings  # noqa: E402
from app.core.auth import mint_token  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.core.outbox import emit  # noqa: E402
from app.core.redis import make_redis, user_stream_key  # noqa: E402
from app.devtools.seed import ensure_service_account  # noqa: E402
from bench._server import spawn as spawn_child  # noqa: E402
from bench._server import stop, wait_healthy  # noqa: E402
from tests.support.harness import ServerHarness, _plain_dsn  # noqa: E402

MENTORS, PER_MENTOR = 1000, 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def seed(dsn: str) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    mentors = [uuid.uuid4() for _ in range(MENTORS)]
    mentees = [uuid.uuid4() for _ in range(MENTORS * PER_MENTOR)]
    availability = '{"timezone": "UTC", "windows": []}'
    users = [(m, f"mentor{n}@bench.example.com", f"Mentor {n}", "mentor", "UTC", "7", True,
              availability) for n, m in enumerate(mentors)]
    users += [(m, f"mentee{n}@bench.example.com", f"Mentee {n}", "mentee", "UTC",
               random.choice(["3", "5", "7"]), False, availability)
              for n, m in enumerate(mentees)]
    assignments = [(uuid.uuid4(), mentee, mentors[n // PER_MENTOR], "auto")
                   for n, mentee in enumerate(mentees)]
    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_records_to_table(
            "users", records=users,
            columns=["id", "email", "name", "role", "timezone", "tier", "is_mentor",
                     "mentor_availability"])
        await connection.copy_records_to_table(
            "assignments", records=assignments, columns=["id", "mentee_id", "mentor_id", "source"])
        await connection.execute("analyze")
    finally:
        await connection.close()
    return mentors, mentees


def mission(mentee_id: uuid.UUID) -> dict:
    now = datetime.now(UTC).isoformat()
    return {"id": str(uuid.uuid4()), "type": "mission.submitted", "occurred_at": now,
            "source": "bench", "data": {
                "submission_id": str(uuid.uuid4()), "mentee_id": str(mentee_id),
                "mission_id": str(uuid.uuid4()), "title": "Bench mission",
                "submitted_at": now, "url": "https://missions.example/x"}}


async def drive(base: str, token: str, mentees: list[uuid.UUID], *, batch: int, clients: int,
                seconds: float) -> dict:
    latencies: list[float] = []
    accepted = errors = 0
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}

    async def client() -> None:
        nonlocal accepted, errors
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as http:
            while time.monotonic() < deadline:
                events = [mission(random.choice(mentees)) for _ in range(batch)]
                body = {"events": events} if batch > 1 else events[0]
                started = time.perf_counter()
                response = await http.post("/api/v1/events", json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code == 202:
                    accepted += response.json()["accepted"]
                else:
                    errors += 1

    started = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.monotonic() - started
    return {"events_per_s": accepted / elapsed, "requests": len(latencies), "errors": errors,
            "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99), "accepted": accepted}


async def wait_drained(db: Database, within: float) -> tuple[int, float]:
    started = time.monotonic()
    async with db.transaction(None) as session:
        total = await session.scalar(text("select count(*) from outbox_events "
                                          "where published_at is null"))
    while True:
        async with db.transaction(None) as session:
            left = await session.scalar(text("select count(*) from outbox_events "
                                             "where published_at is null"))
        if not left or time.monotonic() - started > within:
            return total - left, time.monotonic() - started
        await asyncio.sleep(0.2)


async def relay_lag(db: Database, settings, mentors: list[uuid.UUID], *, rate: float,
                    seconds: float) -> dict:
    redis = make_redis(settings)
    recipients = random.sample(mentors, min(100, len(mentors)))
    committed: dict[str, float] = {}
    interval = 1 / rate
    tasks: set[asyncio.Task] = set()

    async def produce_one(mentor_id: uuid.UUID) -> None:
        async with db.transaction(None) as session:
            event_id = await emit(session, type="workqueue.item_created",
                                  data={"bench": True}, recipients=[mentor_id])
        committed[str(event_id)] = time.time() * 1000

    started = time.monotonic()
    n = 0
    while time.monotonic() - started < seconds:
        task = asyncio.create_task(produce_one(recipients[n % len(recipients)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
    await asyncio.gather(*tasks)
    await asyncio.sleep(2)
    lags: list[float] = []
    seen = 0
    for mentor_id in recipients:
        for entry_id, fields in await redis.xrange(user_stream_key(settings, mentor_id)):
            event_id = json.loads(fields["data"])["id"]
            if event_id in committed:
                seen += 1
                lags.append(int(entry_id.split("-")[0]) - committed[event_id])
    await redis.aclose()
    return {"produced": len(committed), "published": seen,
            "rate": len(committed) / seconds, "p50_ms": pct(lags, 50), "p95_ms": pct(lags, 95),
            "p99_ms": pct(lags, 99), "max_ms": max(lags), "mean_ms": statistics.mean(lags)}


def spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return spawn_child([sys.executable, "-m", *args], cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL)


def main() -> None:
    global MENTORS  # set from the arguments below
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--single-seconds", type=float, default=20)
    parser.add_argument("--relay-seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--single-clients", type=int, default=16)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--relay-only", action="store_true", help="skip the ingestion runs")
    parser.add_argument("--mentors", type=int, default=MENTORS,
                        help=f"{PER_MENTOR} mentees each")
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    MENTORS = args.mentors

    servers = ServerHarness()
    servers.create()
    env = {**os.environ, **servers.environment(), "ENVIRONMENT": "production",
           "REDIS_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:"}
    os.environ.update(env)
    get_settings.cache_clear()
    processes: list[subprocess.Popen] = []
    try:
        asyncio.run(run(args, servers, env, processes))
    finally:
        for process in processes:
            stop(process)
        servers.drop()


async def run(args: argparse.Namespace, servers: ServerHarness, env: dict[str, str],
              processes: list[subprocess.Popen]) -> None:
    settings = get_settings()
    started = time.monotonic()
    mentors, mentees = await seed(_plain_dsn(servers.database_url))
    print(f"seeded {len(mentors)} mentors x {len(mentees)} mentees "
          f"in {time.monotonic() - started:.1f} s")
    port = free_port()
    processes.append(spawn(["uvicorn", "--factory", "app.main:create_app", "--port", str(port),
                            "--workers", str(args.api_workers), "--no-access-log",
                            "--log-level", "warning"], env))
    base = f"http://127.0.0.1:{port}"
    await wait_healthy(base)
    service = await ensure_service_account(settings, uuid.uuid4())  # tokens name real users
    token = mint_token(service.id, "service", settings)
    await drive(base, token, mentees, batch=100, clients=2, seconds=args.warmup)
    if not args.relay_only:
        await ingestion(args, base, token, mentees)

    processes.append(spawn(["app.services.events.relay"], env))
    db = Database.connect(settings.worker_db_url, settings)
    try:
        drained, took = await wait_drained(db, within=900)
        print(f"relay drained the backlog: {drained} events in {took:.1f} s "
              f"({drained / took:.0f} events/s, 1 relay process)")
        lag = await relay_lag(db, settings, mentors, rate=args.rate, seconds=args.relay_seconds)
        print(f"relay lag at {lag['rate']:.0f} events/s for {args.relay_seconds:.0f} s "
              f"({lag['published']}/{lag['produced']} published): p50 {lag['p50_ms']:.0f} ms, "
              f"p95 {lag['p95_ms']:.0f} ms, p99 {lag['p99_ms']:.0f} ms, "
              f"max {lag['max_ms']:.0f} ms")
    finally:
        await db.dispose()


async def ingestion(args: argparse.Namespace, base: str, token: str,
                    mentees: list[uuid.UUID]) -> None:
    ingest = await drive(base, token, mentees, batch=100, clients=args.clients,
                         seconds=args.seconds)
    print(f"ingestion, batches of 100, {args.clients} clients, {args.seconds:.0f} s: "
          f"{ingest['events_per_s']:.0f} events/s ({ingest['requests']} requests, "
          f"{ingest['errors']} errors, p50 {ingest['p50_ms']:.0f} ms, "
          f"p99 {ingest['p99_ms']:.0f} ms)")
    single = await drive(base, token, mentees, batch=1, clients=args.single_clients,
                         seconds=args.single_seconds)
    print(f"single events, {args.single_clients} clients, {args.single_seconds:.0f} s: "
          f"{single['events_per_s']:.0f} events/s (p50 {single['p50_ms']:.1f} ms, "
          f"p99 {single['p99_ms']:.1f} ms, {single['errors']} errors)")


if __name__ == "__main__":
    main()
