"""SSE dashboard benchmarks against a real uvicorn process (issue 7).

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
    TEST_REDIS_URL=redis://127.0.0.1:6379/0 python -m bench.sse_bench \
        [idle|e2e|fanout|all]

- idle: N concurrent idle streams (default 5,000, one per mentor) on one API process;
  prints the server's RSS before and with the streams, KiB per connection, and checks the
  open-stream gauge and the streaming Redis connections. Goal: RSS < 300 MiB.
- e2e: M connected mentors (default 1,000); R events/s (default 100) caused through the API
  (`POST /api/v1/events`, `--batch` `mission.submitted` per request (default 1), each for a
  random mentor's mentee), which commits a work item and its `workqueue.item_created`
  outbox row; a relay process (`python -m app.services.events.relay`) XADDs it to the mentor's
  stream; the stream sends it. Latency to the client's receipt from the outbox row's
  `occurred_at` (written in the transaction, so an upper bound of commit -> receipt; the
  goal: p99 < 250 ms), from the 202 response and from just before the request.
- fanout: the SSE part alone: events XADDed at R/s to random mentors' streams exactly as
  the relay does; latency from just before the XADD to the client's receipt.

The clients are raw asyncio sockets in this process (GET, read headers, parse SSE lines);
the server is a separate `uvicorn --factory app.main:create_app` process. Both raise their
open-file limit. A fresh database and Redis key prefix are made (tests/support/harness.py) and
dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

from bench._server import spawn, stop  # noqa: E402
from tests.support.harness import ServerHarness  # noqa: E402
from tests.support.live import free_port  # noqa: E402

PATH = "/api/v1/mentor/dashboard/stream"
CLIENT_NAME = f"mentorship-sse-bench-{uuid.uuid4().hex[:6]}"


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(tempfile.gettempdir()) / "sse_bench_server.log", "wb")  # noqa: SIM115
        self.process = spawn(
            [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
             "--log-level", "warning", "--backlog", "4096"],
            cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT,
            preexec=raise_nofile,
        )
        deadline = time.monotonic() + 120  # a busy machine imports slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def gauge(self) -> float:
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            if line.startswith("mentorship_sse_open_streams "):
                return float(line.split()[1])
        raise RuntimeError("gauge missing")

    def stop(self) -> None:
        stop(self.process, timeout=20)
        self.log.close()


class RawStream:
    """One SSE connection over a raw socket: just enough HTTP/1.1 and SSE parsing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, token: str) -> RawStream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(f"GET {PATH} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
                     f"Authorization: Bearer {token}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        self = cls(reader, writer)
        event = await self.next_event()
        if event[0] != "snapshot":
            raise RuntimeError(f"first event {event}")
        return self

    async def next_event(self) -> tuple[str, str, str]:
        """(event, id, data) of the next event, skipping comments (pings). Chunked framing
        lines (hex sizes) are ignored: they never start with a field name."""
        event = id_ = ""
        data: list[str] = []
        while True:
            line = (await self.reader.readline()).decode().rstrip("\r\n")
            if not line:
                if data:
                    return event, id_, "\n".join(data)
                if self.reader.at_eof():
                    raise ConnectionError("stream ended")
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                event = value
            elif field == "id":
                id_ = value
            elif field == "data":
                data.append(value)

    def close(self) -> None:
        self.writer.close()


class RawPoster:
    """POSTs JSON over a pool of raw keep-alive HTTP/1.1 connections: a client far lighter
    than httpx, so that the bench process, on the same cores as the server, takes less of
    them. Returns the status code."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = \
            asyncio.Queue()
        for _ in range(connections):
            self.idle.put_nowait(None)  # opened on first use

    async def post(self, path: str, body: bytes, token: str) -> int:
        connection = await self.idle.get()
        try:
            for attempt in (1, 2):  # a kept-alive connection the server closed: reopen once
                if connection is None:
                    connection = await asyncio.open_connection("127.0.0.1", self.port)
                reader, writer = connection
                try:
                    writer.write(f"POST {path} HTTP/1.1\r\nHost: bench\r\n"
                                 f"Authorization: Bearer {token}\r\n"
                                 f"Content-Type: application/json\r\n"
                                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                    head = await reader.readuntil(b"\r\n\r\n")
                except (ConnectionError, asyncio.IncompleteReadError):
                    writer.close()
                    connection = None
                    if attempt == 2:
                        raise
                    continue
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                return int(head.split(b" ", 2)[1])
            raise AssertionError("unreachable")
        finally:
            self.idle.put_nowait(connection)


async def make_mentors(n: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """n mentors, each with one assigned mentee: (mentor ids, mentee ids), same order."""
    from sqlalchemy import insert

    from app.config import get_settings
    from app.core.db import Database
    from app.models import Assignment, User

    settings = get_settings()
    db = Database.connect(settings.worker_db_url, settings)
    mentors = [uuid.uuid4() for _ in range(n)]
    mentees = [uuid.uuid4() for _ in range(n)]
    users = [{"id": i, "email": f"bench-{i}@example.test", "name": f"Mentor {k}",
              "role": "mentor", "is_mentor": True} for k, i in enumerate(mentors)]
    users += [{"id": i, "email": f"bench-{i}@example.test", "name": f"Mentee {k}",
               "role": "mentee"} for k, i in enumerate(mentees)]
    assignments = [{"id": uuid.uuid4(), "mentee_id": mentee, "mentor_id": mentor,
                    "source": "auto"} for mentor, mentee in zip(mentors, mentees, strict=True)]
    async with db.transaction(None) as session:
        for table, rows in ((User, users), (Assignment, assignments)):
            for start in range(0, len(rows), 1000):
                await session.execute(insert(table), rows[start:start + 1000])
    await db.dispose()
    return mentors, mentees


async def open_many(port: int, tokens: list[str], concurrency: int = 100) -> list[RawStream]:
    gate = asyncio.Semaphore(concurrency)

    async def one(token: str) -> RawStream:
        async with gate:
            return await RawStream.open(port, token)

    return await asyncio.gather(*(one(t) for t in tokens))


async def streaming_redis_connections(settings) -> int:
    from app.core.redis import make_redis

    redis = make_redis(settings)
    try:
        return sum(1 for c in await redis.client_list() if c.get("name") == CLIENT_NAME)
    finally:
        await redis.aclose()


async def bench_idle(server: Server, mentors: list[uuid.UUID], settings) -> dict:
    from app.core.auth import mint_token

    tokens = [mint_token(m, "mentor", settings) for m in mentors]
    # Warm up (imports, pools) with a few streams, then measure the baseline.
    warm = await open_many(server.port, tokens[:10])
    for s in warm:
        s.close()
    await asyncio.sleep(2)
    baseline = rss_kib(server.process.pid)
    started = time.perf_counter()
    streams: list[RawStream] = []
    steps = []  # RSS after each 1,000: is the cost per stream flat as streams pile up?
    for first in range(0, len(tokens), 1000):
        streams += await open_many(server.port, tokens[first:first + 1000])
        steps.append({"streams": len(streams),
                      "seconds": round(time.perf_counter() - started, 1),
                      "rss_mib": round(rss_kib(server.process.pid) / 1024, 1)})
    opened_in = time.perf_counter() - started
    await asyncio.sleep(5)
    loaded = rss_kib(server.process.pid)
    gauge = server.gauge()
    redis_conns = await streaming_redis_connections(settings)
    for s in streams:
        s.close()
    for _ in range(120):  # up to a minute for the server to notice every disconnect
        if server.gauge() == 0:
            break
        await asyncio.sleep(0.5)
    closed_at = time.perf_counter()
    for _ in range(60):  # the readers' connections close once their last stream has ended
        if await streaming_redis_connections(settings) == 0:
            break
        await asyncio.sleep(0.5)
    connections_closed_in = time.perf_counter() - closed_at
    result = {
        "streams": len(streams),
        "opened_in_s": round(opened_in, 1),
        "rss_baseline_mib": round(baseline / 1024, 1),
        "rss_with_streams_mib": round(loaded / 1024, 1),
        "kib_per_stream": round((loaded - baseline) / len(streams), 1),
        "gauge_while_open": gauge,
        "redis_connections_while_open": redis_conns,
        "gauge_after_close": server.gauge(),
        "redis_connections_after_close": await streaming_redis_connections(settings),
        "redis_connections_closed_in_s": round(connections_closed_in, 1),
        "rss_after_close_mib": round(rss_kib(server.process.pid) / 1024, 1),
        "steps": steps,
    }
    print("idle:", json.dumps(result, indent=2))
    return result


def percentiles(seconds: list[float]) -> dict:
    ms = sorted(x * 1000 for x in seconds)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 1)

    return {"p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "max_ms": round(ms[-1], 1), "mean_ms": round(statistics.fmean(ms), 1)}


async def at_rate(rate: float, seconds: float, cause) -> None:
    """Call `cause(n)` (a coroutine) at `rate` per second, open loop: a slow one does not
    delay the next."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + n / rate - loop.time()))
        tasks.append(asyncio.create_task(cause(n)))
    await asyncio.gather(*tasks)


class Receiver:
    """Reads every stream in the background: {marker: receipt time} of the marked events."""

    def __init__(self, streams: list[RawStream], marker_of, expected: int) -> None:
        self.arrivals: dict[str, float] = {}
        self.complete = asyncio.Event()  # all `expected` arrived
        self._marker_of, self._expected = marker_of, expected
        self._tasks = [asyncio.create_task(self._receive(s)) for s in streams]

    async def _receive(self, stream: RawStream) -> None:
        while True:
            try:
                event, _id, data = await stream.next_event()
            except (ConnectionError, asyncio.IncompleteReadError):
                return
            marker = self._marker_of(event, data)
            if marker is not None:
                self.arrivals[marker] = time.time()
                if len(self.arrivals) >= self._expected:
                    self.complete.set()

    def expect(self, count: int) -> None:
        self._expected = count
        self.complete.clear()
        if len(self.arrivals) >= count:
            self.complete.set()

    async def wait(self, within: float = 30.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.complete.wait(), within)

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


async def bench_e2e(server: Server, mentors: list[uuid.UUID], mentees: list[uuid.UUID],
                    settings, rate: float, seconds: float, batch: int) -> dict:
    from app.core.auth import mint_token

    relay = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.services.events.relay", cwd=ROOT, env=dict(os.environ),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    streams = await open_many(server.port, [mint_token(m, "mentor", settings) for m in mentors])
    from app.devtools.seed import ensure_service_account

    service = await ensure_service_account(settings, uuid.uuid4())  # tokens name real users
    service_token = mint_token(service.id, "service", settings)
    sent: dict[str, tuple[float, float]] = {}  # marker -> (request sent, 202 received)
    written: dict[str, float] = {}  # marker -> the outbox row's occurred_at (before commit)
    failures: list[str] = []  # status codes or transport errors

    def marker_of(event: str, data: str) -> str | None:
        if event != "workqueue.item_created":
            return None
        envelope = json.loads(data)
        marker = envelope["data"]["title"].rpartition("#")[2]
        written[marker] = datetime.fromisoformat(envelope["occurred_at"]).timestamp()
        return marker

    def mission(marker: str) -> dict:
        now = datetime.now(UTC).isoformat()
        return {"id": str(uuid.uuid4()), "type": "mission.submitted", "occurred_at": now,
                "source": "bench", "data": {
                    "submission_id": str(uuid.uuid4()), "mentee_id": str(random.choice(mentees)),
                    "mission_id": str(uuid.uuid4()), "title": f"bench #{marker}",
                    "submitted_at": now, "url": "https://missions.example/x"}}

    async def cause(n: int | str) -> None:
        markers = [f"{n}.{k}" for k in range(batch)]
        events = [mission(m) for m in markers]
        body = json.dumps({"events": events} if batch > 1 else events[0]).encode()
        started = time.time()
        try:
            status = await poster.post("/api/v1/events", body, service_token)
        except (OSError, asyncio.IncompleteReadError) as exc:
            failures.append(type(exc).__name__)
            return
        if status == 202:
            sent.update((m, (started, time.time())) for m in markers)
        else:
            failures.append(str(status))

    requests = int(rate / batch * seconds)
    poster = RawPoster(server.port, connections=64)
    try:
        receiver = Receiver(streams, marker_of, batch)
        await cause("warm-up")  # through once: the relay process has started
        await receiver.wait(60)
        sent.clear()
        failures.clear()
        receiver.expect(batch + requests * batch)
        await at_rate(rate / batch, seconds, cause)
        await receiver.wait()
        receiver.stop()
    finally:
        relay.terminate()
        await relay.wait()
        for s in streams:
            s.close()
    arrivals = receiver.arrivals
    matched = [m for m in sent if m in arrivals]
    result = {
        "mentors_connected": len(streams), "events_per_s": rate, "events_per_request": batch,
        "seconds": seconds, "events": requests * batch, "accepted": len(sent),
        "failed_requests": dict(collections.Counter(failures)),
        "received": len(matched), "missing": len(sent) - len(matched),
        "request": percentiles([sent[m][1] - sent[m][0] for m in sent]),
        # The goal: the outbox row is written just before the commit, so this bounds
        # commit -> receipt from above.
        "outbox_write_to_receipt": percentiles([arrivals[m] - written[m] for m in matched]),
        "response_to_receipt": percentiles([arrivals[m] - sent[m][1] for m in matched]),
        "request_to_receipt": percentiles([arrivals[m] - sent[m][0] for m in matched]),
    }
    print("e2e:", json.dumps(result, indent=2))
    return result


async def bench_fanout(server: Server, mentors: list[uuid.UUID], settings, rate: float,
                       seconds: float) -> dict:
    from app.core.auth import mint_token
    from app.core.redis import make_redis
    from app.core.streams import append

    streams = await open_many(server.port, [mint_token(m, "mentor", settings) for m in mentors])
    published: dict[str, float] = {}
    redis = make_redis(settings)

    def marker_of(event: str, data: str) -> str | None:
        return str(json.loads(data)["data"]["n"]) if event == "workqueue.item_created" else None

    async def publish(n: int) -> None:
        envelope = {"id": str(uuid.uuid4()), "type": "workqueue.item_created",
                    "occurred_at": "", "source": "mentorship", "refresh_priority": "normal",
                    "data": {"n": n}}
        published[str(n)] = time.time()
        await append(redis, settings, marker=f"{settings.redis_prefix}bench:{envelope['id']}",
                     user_id=random.choice(mentors), type="workqueue.item_created",
                     data=json.dumps(envelope))

    total = int(rate * seconds)
    receiver = Receiver(streams, marker_of, total)
    try:
        await at_rate(rate, seconds, publish)
        await receiver.wait()
    finally:
        receiver.stop()
        await redis.aclose()
        for s in streams:
            s.close()
    arrivals = receiver.arrivals
    result = {
        "mentors_connected": len(streams), "rate_per_s": rate, "seconds": seconds,
        "published": total, "received": len(arrivals),
        "xadd_to_receipt": percentiles([arrivals[m] - published[m] for m in arrivals]),
    }
    print("fanout:", json.dumps(result, indent=2))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", nargs="?", default="all",
                        choices=["idle", "e2e", "fanout", "all"])
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--mentors", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=1, help="e2e: events per request")
    args = parser.parse_args()
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    raise_nofile()

    harness = ServerHarness()  # a fresh database and Redis prefix (sync: outside the loop)
    harness.create()
    os.environ.update(harness.environment())
    from app.config import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    server = None
    try:
        server = Server({"SSE_REDIS_CLIENT_NAME": CLIENT_NAME})
        asyncio.run(run(args, server, settings))
    finally:
        if server is not None:
            server.stop()
        asyncio.run(drop_keys(settings))
        harness.drop()


async def run(args, server: Server, settings) -> None:
    mentors, mentees = await make_mentors(max(args.streams, args.mentors))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    if args.which in ("idle", "all"):
        await bench_idle(server, mentors[:args.streams], settings)
    if args.which in ("e2e", "all"):
        await bench_e2e(server, mentors[:args.mentors], mentees[:args.mentors], settings,
                        args.rate, args.seconds, args.batch)
    if args.which in ("fanout", "all"):
        await bench_fanout(server, mentors[:args.mentors], settings, args.rate, args.seconds)


async def drop_keys(settings) -> None:
    from app.core.redis import make_redis

    redis = make_redis(settings)
    try:
        async for key in redis.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
            await redis.delete(key)
    finally:
        await redis.aclose()


if __name__ == "__main__":
    main()
