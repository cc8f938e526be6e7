"""What an operator relies on, checked on the running stack of `deploy.image_test`:

- production secrets: ENVIRONMENT=production with an explicit 32+ byte JWT_SECRET and an
  admin session key; a token signed with the development default secret is refused; the
  API and the worker refuse to start with a short or the development JWT_SECRET;
- the worker's health check passes (`arq --check`, what Docker runs);
- SIGKILL of the worker, then start: a matcher run requested before the kill finishes after;
- SIGTERM to an API replica: it ends its SSE streams, exits 0 within the grace period, and
  the other replica keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import jwt
from httpx_sse import aconnect_sse

from deploy.stack import Stack, StepFailed, health, inspect, run, wait_for

DEV_JWT_SECRET = "dev-secret-change-me-0123456789abcdef"  # app.config's development default
API_GRACE_SECONDS = 30  # compose.yaml: api.stop_grace_period
QUEUE = "mentorship:arq:queue"  # the arq queue under compose's default REDIS_PREFIX


def expect(response: httpx.Response, status: int, what: str) -> dict:
    if response.status_code != status:
        raise StepFailed(f"{what}: {response.request.method} {response.request.url} answered "
                         f"{response.status_code} (expected {status}): {response.text[:500]}")
    return response.json() if response.content else {}


@dataclass
class People:
    """The users the test provisions, and tokens for them signed with the stack's secret."""

    secret: str
    service_token: str
    mentor: str = field(default_factory=lambda: str(uuid.uuid4()))
    mentee: str = field(default_factory=lambda: str(uuid.uuid4()))
    director: str = field(default_factory=lambda: str(uuid.uuid4()))

    def token(self, role: str) -> str:
        if role == "service":
            return self.service_token
        now = datetime.now(UTC)
        return jwt.encode({"sub": getattr(self, role), "role": role, "iat": now,
                           "exp": now + timedelta(hours=1)}, self.secret, algorithm="HS256")

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role)}"}


def user(role: str, name: str, **extra: object) -> dict:
    return {"email": f"{name}-{uuid.uuid4().hex[:8]}@example.org", "name": name, "role": role,
            "timezone": "UTC", **extra}


MENTOR = dict(mentor_capacity_weekly=20, mentor_max_mentees=10, mentor_specialties=["python"],
              mentor_availability={"timezone": "UTC", "windows": [
                  {"weekday": day, "start": "00:00", "end": "24:00"} for day in range(7)]})


async def provision(stack: Stack, url: str) -> People:
    """A service account from the image's own CLI, then users over HTTP as that service."""
    service_id = str(uuid.uuid4())
    token = stack("exec", "-T", "api", "mentorship", "token", "--role", "service",
                  "--user-id", service_id).stdout.strip().splitlines()[-1]
    people = People(secret=stack.variables["JWT_SECRET"], service_token=token)
    async with httpx.AsyncClient(timeout=10) as client:
        for user_id, body in ((people.mentor, user("mentor", "Mentor", **MENTOR)),
                              (people.mentee, user("mentee", "Mentee", interests=["python"])),
                              (people.director, user("director", "Director"))):
            expect(await client.put(f"{url}/api/v1/users/{user_id}", json=body,
                                    headers=people.auth("service")), 201, "provision a user")
    return people


class SseStream:
    """One mentor dashboard stream, read in the background; events kept in arrival order."""

    def __init__(self, base_url: str, token: str) -> None:
        self.url = f"{base_url}/api/v1/mentor/dashboard/stream"
        self.token = token
        self.events: list[dict] = []
        self.ended_at: float | None = None
        self.error: BaseException | None = None

    async def read(self) -> None:
        timeout = httpx.Timeout(10, read=120)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client, aconnect_sse(
                client, "GET", self.url, headers={"Authorization": f"Bearer {self.token}"}
            ) as source:
                async for sse in source.aiter_sse():
                    self.events.append({"event": sse.event, "id": sse.id, "data": sse.data})
        except (httpx.HTTPError, OSError) as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()

    async def wait_for(self, event: str, within: float, containing: str = "") -> dict:
        def seen() -> dict | None:
            for item in self.events:
                if item["event"] == event and containing in item["data"]:
                    return item
            if self.ended_at is not None:
                raise StepFailed(f"{self.url}: stream ended ({self.error!r}) before {event}")
            return None

        return await wait_for(f"{event} on {self.url}", seen, within, 0.02)


async def production_secrets(timer, stack: Stack, url: str, people: People) -> None:
    env = dict(item.split("=", 1) for item in inspect(stack.container("api"))["Config"]["Env"])
    if env.get("ENVIRONMENT") != "production":
        raise StepFailed(f"ENVIRONMENT is {env.get('ENVIRONMENT')!r} in the API container")
    if len(env.get("JWT_SECRET", "").encode()) < 32:
        raise StepFailed("JWT_SECRET is shorter than 32 bytes")
    if not env.get("ADMIN_SECRET_KEY"):
        raise StepFailed("ADMIN_SECRET_KEY is not set")
    forged = People(secret=DEV_JWT_SECRET, service_token="", director=people.director)
    async with httpx.AsyncClient(timeout=10) as client:
        expect(await client.get(f"{url}/api/v1/whoami", headers=people.auth("director")),
               200, "a token signed with the stack's secret")
        expect(await client.get(f"{url}/api/v1/whoami", headers=forged.auth("director")),
               401, "a token signed with the development default secret")
    timer.note("ENVIRONMENT=production, JWT_SECRET of "
               f"{len(env['JWT_SECRET'].encode())} bytes, admin key set; dev-secret token: 401")
    for service, secret in (("api", "too-short-a-secret"), ("worker", DEV_JWT_SECRET)):
        refusal = refused_to_start(stack, service, secret)
        timer.note(f"{service} with a weak JWT_SECRET: {refusal}")


def refused_to_start(stack: Stack, service: str, secret: str) -> str:
    """Start a one-off container of the service (its own command) with a weak secret: it
    must exit non-zero saying why, not serve."""
    try:
        result = stack("run", "--rm", "--no-deps", "-T", "-e", f"JWT_SECRET={secret}", service,
                       check=False, timeout=180)
    except subprocess.TimeoutExpired as exc:
        raise StepFailed(f"{service} kept running with JWT_SECRET={secret!r}") from exc
    said = result.stdout + result.stderr
    if result.returncode == 0 or "refuses to start" not in said:
        raise StepFailed(f"{service} with JWT_SECRET={secret!r}: exit {result.returncode}, "
                         f"{said[-800:]}")
    reason = next(line for line in said.splitlines() if "refuses to start" in line)
    return f"exit {result.returncode}, " + reason[reason.index("refuses"):][:110]


async def worker_health(timer, stack: Stack) -> None:
    worker = stack.container("worker")
    if health(worker) != "healthy":
        raise StepFailed(f"worker is {health(worker)}")
    probes = inspect(worker)["State"]["Health"]["Log"]
    passed = sum(1 for probe in probes if probe["ExitCode"] == 0)
    # The probe reads the key arq's own check reads; run that too (it imports the worker).
    check = stack("exec", "-T", "worker", "arq", "--check", "app.workers.WorkerSettings")
    said = (check.stdout + check.stderr).strip().splitlines()
    timer.note(f"Docker's probe (app.core.probe worker): {passed} of the last {len(probes)} "
               f"passed; `arq --check`: exit 0 ({said[-1][-90:] if said else ''})")


async def worker_sigkill_loses_no_job(timer, stack: Stack, url: str, people: People) -> None:
    """A matcher run requested while the worker is frozen (`docker pause`, so it is surely
    still in the queue, not half-run), then SIGKILL and start: the run finishes and the
    mentee is placed. (A job killed mid-run waits for arq's in-progress mark: README.)"""
    waiting = str(uuid.uuid4())
    worker = stack.container("worker")
    async with httpx.AsyncClient(timeout=10) as client:
        expect(await client.put(f"{url}/api/v1/users/{waiting}", headers=people.auth("service"),
                                json=user("mentee", "Waiting", interests=["python"])),
               201, "provision a waiting mentee")
        run(["docker", "pause", worker])
        try:
            accepted = expect(await client.post(
                f"{url}/api/v1/director/matching/run", headers=people.auth("director"),
                json={"mentee_ids": [waiting]}), 202, "request a matcher run")
            queued = redis_cli(stack, "ZSCORE", QUEUE, accepted["job_id"])
        finally:
            run(["docker", "kill", "--signal", "KILL", worker])
        killed_at = time.monotonic()
        state = inspect(worker)["State"]
        if state["Status"] != "exited" or state["ExitCode"] != 137:
            raise StepFailed(f"worker after SIGKILL: {state['Status']} exit {state['ExitCode']}")
        if not queued:
            raise StepFailed(f"job {accepted['job_id']} not in the queue {QUEUE}")
        timer.note(f"worker SIGKILLed (exit 137) with the run queued (score {queued})")
        run(["docker", "start", worker])
        run_url = f"{url}{accepted['run_url']}"

        async def finished() -> dict | None:
            body = expect(await client.get(run_url, headers=people.auth("director")), 200,
                          "read the run")
            return body if body["status"] in ("done", "failed", "skipped") else None

        result = await wait_for("the matcher run to finish", finished, 180, 0.5)
        if result["status"] != "done" or result["assigned_count"] != 1:
            raise StepFailed(f"matcher run after the restart: {json.dumps(result)[:500]}")
        timer.note(f"run {result['status']} {time.monotonic() - killed_at:.1f} s after the "
                   f"kill, assigned {result['assigned_count']}")
    await wait_for("worker healthy again", lambda: health(worker) == "healthy", 120, 1)


def redis_cli(stack: Stack, *command: str) -> str:
    """A command on the stack's Redis, through its own redis-cli."""
    return stack("exec", "-T", "redis", "redis-cli", *command).stdout.strip()


async def sigterm_drains_api(timer, stack: Stack, urls: list[str], people: People) -> None:
    """SIGTERM to the last API replica while a mentor's SSE stream is open on it."""
    replica, url, other = stack.containers("api")[-1], urls[-1], urls[0]
    stream = SseStream(url, people.token("mentor"))
    reader = asyncio.create_task(stream.read())
    await stream.wait_for("snapshot", within=30)
    run(["docker", "kill", "--signal", "TERM", replica])
    sent = time.monotonic()
    try:
        await wait_for("the API replica to exit", lambda: inspect(replica)["State"]["Status"]
                       == "exited", API_GRACE_SECONDS, 0.1)
    except StepFailed:
        run(["docker", "kill", replica], check=False)
        raise
    stopped = time.monotonic() - sent
    state = inspect(replica)["State"]
    await asyncio.wait_for(reader, 5)
    if state["ExitCode"] != 0:
        raise StepFailed(f"API replica exited {state['ExitCode']} after SIGTERM")
    timer.note(f"exit 0 {stopped:.1f} s after SIGTERM (grace {API_GRACE_SECONDS} s); its SSE "
               f"stream ended after {stream.ended_at - sent:.1f} s")
    async with httpx.AsyncClient(timeout=5) as client:
        expect(await client.get(f"{other}/readyz"), 200, "the other replica")


async def run_all(timer, stack: Stack, urls: list[str], people: People) -> None:
    with timer.step("production secrets"):
        await production_secrets(timer, stack, urls[0], people)
    with timer.step("worker health check passes"):
        await worker_health(timer, stack)
    with timer.step("SIGKILL of the worker loses no job"):
        await worker_sigkill_loses_no_job(timer, stack, urls[0], people)
    with timer.step("SIGTERM drains an API replica within its grace period"):
        await sigterm_drains_api(timer, stack, urls, people)
