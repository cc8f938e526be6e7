"""Per-request cost against the stack's floor, measured honestly.

Two servers in the same run, one uvicorn worker each, on a database seeded with
`mentorship seed`: the bare anchor (bench/bare_app.py: FastAPI + asyncpg, one transaction,
`set_config`, `SELECT 1`; no auth, no middleware) and the real `create_app()` as deployed
(production settings, JSON access log at INFO to a file, rate limiter, the token's
database-checked role cached for AUTH_CACHE_SECONDS = its default 60 s). wrk (a C load
generator, so the client does not compete with Python for the cores) drives each route for
`--seconds`, a random mentor token per request, routes alternating round by round so drift
on a noisy machine hits all alike:

- the floor, `GET /api/v1/mentor/profile`, `/dashboard` and `/workqueue` at `--connections`;
- `POST /api/v1/mentor/sessions` (a random mentee of a random mentor, 60 minutes inside
  the mentor's windows 2-40 weeks ahead) at `--booking-connections`: its p95;
- `POST /api/v1/events`, one `mission.submitted` per request, at `--events-connections`:
  events accepted per second.

Prints req/s, p50/p95/p99, the server's CPU per request (from /proc: barely moved by
other load on the machine) and each route's share of the floor: by throughput in the
same round (median over rounds), and by CPU (floor CPU / route CPU, what the throughput
share tends to when the API process has a core to itself). Records nothing by itself
(copy the table into bench/RESULTS.md with the load average it prints).

    python -m bench.gap_bench --mentors 1000 --mentees 20000 --seconds 10 --rounds 3
    python -m bench.gap_bench --mentors 20 --mentees 200 --seconds 1 --rounds 1   # smoke
    BENCH_KEEP_DB=1 python -m bench.gap_bench ...        # keep the seeded database, then
    python -m bench.gap_bench --database-url postgresql+asyncpg://.../NAME ...  # reuse it
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "floor (bare stack)"
GETS = {
    FLOOR: "/floor",
    "GET /api/v1/mentor/profile": "/api/v1/mentor/profile",
    "GET /api/v1/mentor/dashboard": "/api/v1/mentor/dashboard",
    "GET /api/v1/mentor/workqueue": "/api/v1/mentor/workqueue",
}
BOOKING = "POST /api/v1/mentor/sessions (booking)"
EVENTS = "POST /api/v1/events (one event per request)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentors", type=int, default=1000)
    parser.add_argument("--mentees", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=10, help="per route and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--booking-connections", type=int, default=8)
    parser.add_argument("--events-connections", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=500, help="distinct mentor tokens")
    parser.add_argument("--auth-cache-seconds", default="60",
                        help="AUTH_CACHE_SECONDS of the real app (its default: 60)")
    parser.add_argument("--only", nargs="*", metavar="ROUTE",
                        help="run only the routes whose name contains one of these words "
                             "(the floor always runs)")
    parser.add_argument("--database-url",
                        help="an already seeded database (BENCH_KEEP_DB=1 keeps one); else "
                             "a fresh one is created, seeded and dropped")
    return parser.parse_args(argv)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server(stack: ExitStack, factory: str, env: dict[str, str], port: int,
            log_dir: Path) -> tuple[str, int]:
    log = open(log_dir / f"{factory.split(':')[0]}.log", "w")  # noqa: SIM115
    from bench._server import spawn, stop, wait_healthy

    process = spawn(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    stack.callback(log.close)
    stack.callback(stop, process)  # also on Ctrl-C or SIGTERM: never leave a server behind
    base = f"http://127.0.0.1:{port}"
    import asyncio

    asyncio.run(wait_healthy(base, process))
    return base, process.pid


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    from bench._database import BenchDatabase  # sets the harness's defaults: not at --help
    from bench._server import BENCH_JWT_SECRET

    with ExitStack() as stack:
        if args.database_url:
            env = {**os.environ, "DATABASE_URL": args.database_url,
                   "REDIS_URL": os.environ["TEST_REDIS_URL"],
                   "REDIS_PREFIX": f"gap:{secrets.token_hex(4)}:",
                   "ADMIN_SECRET_KEY": secrets.token_urlsafe(32)}
        else:
            database = stack.enter_context(BenchDatabase())
            env = {**os.environ, **database.servers.environment()}
        env.update({"ENVIRONMENT": "production", "JWT_SECRET": BENCH_JWT_SECRET,
                    "LOG_LEVEL": "INFO", "AUTH_CACHE_SECONDS": args.auth_cache_seconds})
        if not args.database_url:
            subprocess.run([sys.executable, "-m", "app.devtools.cli", "seed", "--mentors",
                            str(args.mentors), "--mentees", str(args.mentees)],
                           cwd=ROOT, env={**env, "ENVIRONMENT": "development"}, check=True,
                           capture_output=True)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gap-")))
        workloads, tokens = _workloads(env["DATABASE_URL"], work, args)
        bare = _server(stack, "bench.bare_app:app", env, _free_port(), work)
        real = _server(stack, "app.main:create_app", env, _free_port(), work)
        from bench._gap_load import wrk

        _warm_identities(real[0], tokens)
        from sqlalchemy.engine import make_url

        database_name = make_url(env["DATABASE_URL"]).database
        load_before = os.getloadavg()
        results: dict[str, list[dict[str, float]]] = {name: [] for name in workloads}
        for _ in range(args.rounds):
            for name, (path, script, connections) in workloads.items():
                base, pid = bare if name == FLOOR else real
                results[name].append(wrk(base + path, script, args.seconds, connections, pid,
                                         database_name))
        _report(results, load_before, os.getloadavg(), args)


def _warm_identities(base: str, tokens: list[str]) -> None:
    """One request per token before timing: the real app checks each token's user against
    the database once per AUTH_CACHE_SECONDS by design, so the timed rounds measure the
    steady state (a cached identity), not a cold start where every first request of a
    token pays the lookup."""
    import asyncio

    import httpx

    async def warm() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            for start in range(0, len(tokens), 8):
                await asyncio.gather(*(
                    http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
                    for token in tokens[start:start + 8]))

    asyncio.run(warm())


def _workloads(database_url: str, work: Path, args: argparse.Namespace
               ) -> tuple[dict[str, tuple[str, Path, int]], list[str]]:
    """name -> (path, wrk script, connections), in the order of a round; and every token
    the scripts send."""
    from bench import _gap_load as load

    mentors, service_token, mentees = _seeded(database_url, args.tokens)
    get = load.get_script(work, [mentor.token for mentor in mentors])
    workloads = {name: (path, get, args.connections) for name, path in GETS.items()}
    workloads[BOOKING] = ("/api/v1/mentor/sessions", load.booking_script(work, mentors),
                          args.booking_connections)
    workloads[EVENTS] = ("/api/v1/events", load.event_script(work, service_token, mentees),
                         args.events_connections)
    if args.only:
        workloads = {name: workload for name, workload in workloads.items()
                     if name == FLOOR or any(word in name for word in args.only)}
    return workloads, [mentor.token for mentor in mentors] + [service_token]


def _seeded(database_url: str, count: int):
    """Tokens of `count` mentors (with their windows and mentees), the service account's
    token, and 2,000 mentee ids for the events."""
    import asyncio
    import json
    from zoneinfo import ZoneInfo

    import asyncpg

    from app.config import Settings
    from app.core.auth import mint_token
    from bench._gap_load import Mentor
    from bench._server import BENCH_JWT_SECRET

    async def fetch():
        connection = await asyncpg.connect(
            database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            mentors = await connection.fetch(
                "select u.id, u.mentor_availability::text as availability, "
                "array(select a.mentee_id::text from assignments a where a.mentor_id = u.id "
                "and a.ended_at is null) as mentees from users u "
                "where u.role = 'mentor' and u.is_mentor and u.active order by u.id limit $1",
                count)
            service = await connection.fetchval(
                "select id from users where role = 'service' and active limit 1")
            mentees = await connection.fetch(
                "select mentee_id::text from assignments where ended_at is null limit 2000")
            return mentors, service, [row[0] for row in mentees]
        finally:
            await connection.close()

    rows, service, mentees = asyncio.run(fetch())
    settings = Settings(jwt_secret=BENCH_JWT_SECRET, jwt_algorithm="HS256")
    ttl = timedelta(hours=6)
    mentors = []
    for row in rows:
        availability = json.loads(row["availability"] or "{}")
        mentors.append(Mentor(mint_token(row["id"], "mentor", settings, ttl=ttl),
                              ZoneInfo(availability.get("timezone", "UTC")),
                              availability.get("windows", []), list(row["mentees"])))
    return mentors, mint_token(service, "service", settings, ttl=ttl), mentees


def _report(results, load_before, load_after, args) -> None:
    floor_runs = results[FLOOR]
    floor_cpu = statistics.median(run["cpu_ms"] for run in floor_runs)
    print(f"\n{args.mentors} mentors x {args.mentees} mentees, {args.rounds} rounds x "
          f"{args.seconds} s per route; wrk -c {args.connections} (GET), "
          f"-c {args.booking_connections} (booking), -c {args.events_connections} (events); "
          f"best round's req/s and latencies, median share and CPU over rounds")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print("| route | clients | req/s | p50 ms | p95 ms | p99 ms | server CPU ms/req "
          "| Postgres CPU ms/req | share of the floor (req/s) | share of the floor (CPU) "
          "| outcomes |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        best = max(runs, key=lambda run: run["rps"])
        shares = [run["rps"] / floor["rps"] for run, floor in zip(runs, floor_runs, strict=True)]
        cpu = statistics.median(run["cpu_ms"] for run in runs)
        db_cpu = statistics.median(run["db_cpu_ms"] for run in runs)
        clients = (args.booking_connections if name == BOOKING else
                   args.events_connections if name == EVENTS else args.connections)
        outcomes = ", ".join(f"{sum(run[key] for run in runs)} {label}" for key, label in
                             (("ok", "2xx"), ("conflicts", "409"),
                              ("client_errors", "4xx")) if sum(run[key] for run in runs))
        rate = (f"{best['ok_rps']:,.0f} events/s" if name == EVENTS else f"{best['rps']:,.0f}")
        print(f"| {name} | {clients} | {rate} | {best['p50']:.1f} | {best['p95']:.1f} "
              f"| {best['p99']:.1f} | {cpu:.2f} | {db_cpu:.2f} "
              f"| {100 * statistics.median(shares):.0f} % "
              f"| {100 * floor_cpu / cpu:.0f} % | {outcomes} |")


if __name__ == "__main__":
    main()
