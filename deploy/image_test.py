"""`make image-test`: build the container image and run the compose stack end to end.

    python -m deploy.image_test [--keep] [--project NAME]

1. base images: the Debian + Python 3.11, PostgreSQL and Redis images built from Debian
   packages (`deploy/local-images`, each only when missing; no registry is reachable here);
2. app image: the Dockerfile on that base, its size recorded;
3. `compose up` (two API replicas, one worker) on an empty database: the one-shot migration
   exits 0, the APIs and the worker turn healthy; cold start = `up` to the first 200;
4. over HTTP from the host: provision users with a service token, assign, open the mentor's
   SSE stream on both replicas, book a session on one, see `session.scheduled` on both;
5. operator checks (deploy/operator_checks.py): production secrets, the worker's health,
   SIGKILL of the worker loses no job, SIGTERM drains an API replica within its grace period;
6. `compose down -v` leaves no container, network or volume of the project.

Exits 0 only if every step held; prints each step's duration. Images (PYTHON_IMAGE,
POSTGRES_IMAGE, REDIS_IMAGE, APP_IMAGE) may be given in the environment, e.g. the official
ones where a registry is reachable; then step 1 builds nothing of theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx

from deploy import operator_checks as checks
from deploy.stack import Stack, StepFailed, health, inspect, run, wait_for

LOCAL = {
    "PYTHON_IMAGE": "mentorship/python:3.11-bookworm",
    "POSTGRES_IMAGE": "mentorship/postgres:15-bookworm",
    "REDIS_IMAGE": "mentorship/redis:7-bookworm",
}
API_PORTS = (18010, 18011)  # away from the host's own 8000 and from compose's default 18000
API_REPLICAS = len(API_PORTS)


class Timer:
    """Prints each step with its duration; keeps them for the summary."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.steps: list[tuple[str, float]] = []

    def step(self, name: str):
        timer = self

        class _Step:
            def __enter__(self):
                self.start = time.monotonic()
                print(f"[image-test] {name} ...", flush=True)

            def __exit__(self, kind, value, traceback):
                elapsed = time.monotonic() - self.start
                timer.steps.append((name, elapsed))
                status = "ok" if kind is None else "FAILED"
                print(f"[image-test] {name}: {status} in {elapsed:.1f} s", flush=True)

        return _Step()

    def note(self, text: str) -> None:
        print(f"[image-test]   {text}", flush=True)


def images(env: dict[str, str]) -> dict[str, str]:
    chosen = {name: env.get(name) or default for name, default in LOCAL.items()}
    chosen["APP_IMAGE"] = env.get("APP_IMAGE") or "mentorship:image-test"
    return chosen


def build_images(timer: Timer, chosen: dict[str, str]) -> None:
    with timer.step("base images (deploy/local-images)"):
        output = run(["deploy/local-images"], env={
            **os.environ, **{k: v for k, v in chosen.items() if k in LOCAL}}).stdout
        for line in output.splitlines():
            timer.note(line.removeprefix("[local-images] "))
    with timer.step("app image (docker build)"):
        run(["docker", "build", "--quiet", "--build-arg", f"PYTHON_IMAGE={chosen['PYTHON_IMAGE']}",
             "-t", chosen["APP_IMAGE"], "."], timeout=1800)
        size = int(inspect(chosen["APP_IMAGE"])["Size"])
        timer.note(f"{chosen['APP_IMAGE']}: {size / 1e6:.0f} MB on {chosen['PYTHON_IMAGE']}")


async def start_stack(timer: Timer, stack: Stack) -> list[str]:
    """`up` on an empty database; returns the API base URLs once each answers /readyz 200."""
    with timer.step("compose up: cold start to first 200"):
        started = time.monotonic()
        stack("up", "-d", "--no-build", "--scale", f"api={API_REPLICAS}", timeout=600)
        timer.note(f"`up` returned after {time.monotonic() - started:.1f} s "
                   "(postgres and redis healthy, migration done, apps started)")
        migrate = inspect(stack.container("migrate"))["State"]
        if migrate["Status"] != "exited" or migrate["ExitCode"] != 0:
            raise StepFailed(f"migrate: {migrate['Status']} exit {migrate['ExitCode']}")
        urls = [f"http://127.0.0.1:{stack.host_port(cid)}" for cid in stack.containers("api")]
        if len(urls) != API_REPLICAS:
            raise StepFailed(f"expected {API_REPLICAS} API containers, got {len(urls)}")
        async with httpx.AsyncClient(timeout=5) as client:
            async def ready(url: str) -> bool:
                return (await client.get(f"{url}/readyz")).status_code == 200

            await wait_for("/readyz 200 from the first API", lambda: ready(urls[0]), 120, 0.1)
            timer.note(f"cold start (`up` to first 200): {time.monotonic() - started:.1f} s")
            for url in urls[1:]:
                await wait_for(f"/readyz 200 from {url}", lambda url=url: ready(url), 60, 0.2)
    with timer.step("containers healthy (API replicas and worker)"):
        for cid in [*stack.containers("api"), stack.container("worker")]:
            await wait_for(f"{inspect(cid)['Name']} healthy",
                           lambda cid=cid: health(cid) == "healthy", 120, 1)
        timer.note(f"healthy {time.monotonic() - started:.1f} s after `up`")
    return urls


async def end_to_end(timer: Timer, stack: Stack, urls: list[str]) -> checks.People:
    with timer.step("provision users with a service token"):
        people = await checks.provision(stack, urls[0])
        timer.note(f"mentor {people.mentor}, mentee {people.mentee}, director {people.director}")
    with timer.step("book a session; the event on the mentor's SSE stream of each replica"):
        await book_and_see_event(timer, people, urls)
    return people


async def book_and_see_event(timer: Timer, people: checks.People, urls: list[str]) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        assigned = await client.post(
            f"{urls[0]}/api/v1/director/assignments", headers=people.auth("director"),
            json={"mentee_id": people.mentee, "mentor_id": people.mentor})
        checks.expect(assigned, 201, "assign the mentee")
        streams = [checks.SseStream(url, people.token("mentor")) for url in urls]
        readers = [asyncio.create_task(stream.read()) for stream in streams]
        try:
            for stream in streams:
                await stream.wait_for("snapshot", within=30)
            starts_at = (datetime.now(UTC) + timedelta(days=1)).replace(
                hour=10, minute=0, second=0, microsecond=0)
            booked_at = time.monotonic()
            booking = await client.post(
                f"{urls[-1]}/api/v1/mentor/sessions", headers=people.auth("mentor"),
                json={"mentee_id": people.mentee, "starts_at": starts_at.isoformat(),
                      "duration_minutes": 30, "agenda": "image test"})
            session_id = checks.expect(booking, 201, "book a session")["id"]
            for url, stream in zip(urls, streams, strict=True):
                event = await stream.wait_for("session.scheduled", within=30,
                                              containing=session_id)
                timer.note(f"{url}: session.scheduled (id {event['id']}) "
                           f"{time.monotonic() - booked_at:.2f} s after the booking")
        finally:
            for reader in readers:
                reader.cancel()


def tear_down(timer: Timer, stack: Stack) -> None:
    with timer.step("compose down -v leaves nothing"):
        stack("down", "-v", "--remove-orphans", "--timeout", "30", timeout=300)
        left = stack.leftovers()
        if left:
            raise StepFailed(f"left after down: {', '.join(left)}")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.image_test",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default="mentorship-image-test",
                        help="compose project name (default %(default)s)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the stack running at the end (for a look around)")
    args = parser.parse_args(argv)

    timer = Timer()
    chosen = images(dict(os.environ))
    stack = Stack(args.project, {
        **chosen,
        "API_PORT": f"{API_PORTS[0]}-{API_PORTS[-1]}",
        # Production rules: an explicit strong signing secret and admin session key.
        "JWT_SECRET": secrets.token_urlsafe(48),
        "ADMIN_SECRET_KEY": secrets.token_urlsafe(48),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "APP_DB_PASSWORD": secrets.token_urlsafe(16),
        "WORKER_DB_PASSWORD": secrets.token_urlsafe(16),
    })
    ok = False
    try:
        build_images(timer, chosen)
        stack("down", "-v", "--remove-orphans", timeout=300)  # a previous run's leftovers
        urls = await start_stack(timer, stack)
        people = await end_to_end(timer, stack, urls)
        await checks.run_all(timer, stack, urls, people)
        ok = True
    except StepFailed as exc:
        print(f"[image-test] FAILED: {exc}", file=sys.stderr, flush=True)
        print(stack("logs", "--no-color", "--tail", "40", check=False).stdout[-8000:],
              file=sys.stderr)
    finally:
        if not args.keep:
            try:
                tear_down(timer, stack)
            except StepFailed as exc:
                print(f"[image-test] FAILED: {exc}", file=sys.stderr, flush=True)
                ok = False
    total = time.monotonic() - timer.started
    print(f"[image-test] {'PASSED' if ok else 'FAILED'} in {total:.0f} s "
          f"({', '.join(f'{name}: {secs:.0f} s' for name, secs in timer.steps)})", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
