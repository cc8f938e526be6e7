"""`mentorship dev` for real: a subprocess on a free port, on the test servers and on
embedded ones. It must come up (create, migrate, seed, print working tokens, /readyz 200)
and SIGINT must stop everything it started: API, worker, embedded PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.core.auth import decode_token
from tests.support.harness import ROOT, ServerHarness

STARTUP_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
STREAM_TIMEOUT = 90.0
SERVER_VARIABLES = ("DATABASE_URL", "REDIS_URL", "APP_DATABASE_URL", "WORKER_DATABASE_URL")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None if it is gone (or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[1]))


def alive(pid: int) -> bool:
    return _stat(pid) is not None


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            children.setdefault(stat[1], []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def processes_mentioning(text: str) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.add(int(entry.name))
            except OSError:
                continue
    return {pid for pid in found if alive(pid)}


class DevRun:
    def __init__(self, tmp_path: Path, env: dict[str, str], *, data_dir: Path | None = None,
                 log_name: str = "dev.log", with_make: bool = False) -> None:
        self.env = env
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / log_name
        # Not under tmp_path: pytest runs of other users of this machine chmod
        # /tmp/pytest-of-<user> to 0700 at any time, and the embedded server runs as its own
        # system user when started by root.
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="mentorship-dev-test-"))
        options = ["--data-dir", str(self.data_dir), "--mentors", "5", "--mentees", "40"]
        if with_make:  # the README's command, its options passed through ARGS and PORT
            argv = ["make", "--no-print-directory", "dev", f"PORT={self.port}",
                    f"ARGS={' '.join(options)}"]
            cwd = ROOT
        else:
            argv = [sys.executable, "-m", "app.devtools.cli", "dev", "--port", str(self.port),
                    *options]
            cwd = tmp_path  # no stray .env from the repository
        with self.log_path.open("w") as log:
            # Its own process group: interrupt() is a terminal's Ctrl-C (make and all).
            self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def restart(self, tmp_path: Path) -> DevRun:
        """`make dev` again on the same data directory (after this run stopped)."""
        return DevRun(tmp_path, self.env, data_dir=self.data_dir, log_name="dev-again.log",
                      with_make=True)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"dev exited early:\n{self.log}"
            if "Press Ctrl-C to stop." in self.log:
                response = httpx.get(f"{self.base}/readyz", timeout=5)
                assert response.status_code == 200, response.text
                return
            time.sleep(0.5)
        pytest.fail(f"dev did not come up in {STARTUP_TIMEOUT:g} s:\n{self.log}")

    def tokens(self) -> dict[str, str]:
        return {role.lower(): token
                for role, token in re.findall(r"export (\w+)_TOKEN=(\S+)", self.log)}

    def interrupt(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"dev did not stop in {STOP_TIMEOUT:g} s:\n{self.log}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if (self.data_dir / "postgres" / "postmaster.pid").exists():  # never leave it running
            from app.devtools.embedded import stop_postgres

            stop_postgres(self.data_dir / "postgres")
        shutil.rmtree(self.data_dir, ignore_errors=True)


def check_running_service(run: DevRun, settings: Settings) -> None:
    tokens = run.tokens()
    assert set(tokens) == {"mentor", "mentee", "director", "admin", "service"}, run.log
    for role, token in tokens.items():
        assert decode_token(token, settings).role == role
        response = httpx.get(f"{run.base}/api/v1/whoami", timeout=10,
                             headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200 and response.json()["role"] == role
    assert httpx.get(f"{run.base}/docs", timeout=10).status_code == 200
    assert "Seeded a demo programme" in run.log
    assert "started worker-1" in run.log and "Starting worker" in run.log


def test_dev_on_given_servers_creates_migrates_seeds_serves_and_stops(
    servers: ServerHarness, settings: Settings, tmp_path: Path
) -> None:
    name = f"{servers.name}_dev"
    env = {key: value for key, value in os.environ.items() if key not in SERVER_VARIABLES}
    env.update(DATABASE_URL=servers.database_url_for(name), REDIS_URL=servers.redis_url,
               REDIS_PREFIX=f"{servers.prefix}dev:")
    run = DevRun(tmp_path, env)
    try:
        run.wait_until_ready()
        assert f"Created database {name}" in run.log
        check_running_service(run, settings)
        children = descendants(run.process.pid)
        assert len(children) >= 2  # the API and the worker

        assert run.interrupt() == 0, run.log
        assert "Stopped." in run.log
        assert not [pid for pid in children if alive(pid)]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{run.base}/healthz", timeout=2)
    finally:
        run.kill()
        servers.drop_database(name)


def _stream_until(run: DevRun, token: str, wanted: str, action) -> dict:
    """Open the mentor's SSE stream, call `action()` once the snapshot arrived, and return
    the envelope of the first `wanted` event (the relay runs in the dev stack's worker)."""
    url = f"{run.base}/api/v1/mentor/dashboard/stream"
    timeout = httpx.Timeout(10, read=STREAM_TIMEOUT)
    event = None
    deadline = time.monotonic() + STREAM_TIMEOUT
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"},
                      timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
                if event == "snapshot":
                    action()
            elif line.startswith("data:") and event == wanted:
                return json.loads(line.split(":", 1)[1])
            assert time.monotonic() < deadline, f"no {wanted} in {STREAM_TIMEOUT:g} s"
    pytest.fail(f"the stream ended before {wanted}:\n{run.log}")


def _submit_mission(run: DevRun, tokens: dict[str, str], submission_id: str) -> None:
    mentee_id = str(decode_token(tokens["mentee"], Settings()).user_id)  # same dev key
    now = datetime.now(UTC).isoformat()
    response = httpx.post(
        f"{run.base}/api/v1/events", timeout=10,
        headers={"Authorization": f"Bearer {tokens['service']}"},
        json={"id": str(uuid.uuid4()), "type": "mission.submitted", "occurred_at": now,
              "source": "missions",
              "data": {"submission_id": submission_id, "mentee_id": mentee_id,
                       "mission_id": str(uuid.uuid4()), "title": "Fresh machine",
                       "submitted_at": now}})
    assert response.status_code == 202, response.text


def test_dev_without_urls_serves_live_events_keeps_data_and_stops_everything(
    settings: Settings, tmp_path: Path
) -> None:
    """The README's `make dev` on a machine with nothing but Python: embedded PostgreSQL
    and Redis (unix socket). A mission submitted through the API reaches the mentor's live
    dashboard; a second run on the same data directory keeps the data; Ctrl-C stops all."""
    env = {key: value for key, value in os.environ.items() if key not in SERVER_VARIABLES}
    run = DevRun(tmp_path, env)
    try:
        run.wait_until_ready()
        assert "starting embedded PostgreSQL" in run.log and "starting embedded Redis" in run.log
        check_running_service(run, settings)
        # `mentorship token` in a second terminal (same directory) finds the running stack.
        service_id = str(uuid.uuid4())
        minted = subprocess.run(
            [sys.executable, "-m", "app.devtools.cli", "token", "--role", "service",
             "--user-id", service_id], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=120)
        assert minted.returncode == 0, minted.stderr
        whoami = httpx.get(f"{run.base}/api/v1/whoami", timeout=10, headers={
            "Authorization": f"Bearer {minted.stdout.strip()}"})
        assert whoami.json() == {"user_id": service_id, "role": "service"}, whoami.text
        tokens = run.tokens()
        submission_id = str(uuid.uuid4())
        envelope = _stream_until(run, tokens["mentor"], "workqueue.item_created",
                                 lambda: _submit_mission(run, tokens, submission_id))
        assert envelope["data"]["kind"] == "mission_review"
        item_id = envelope["data"]["item_id"]

        children = descendants(run.process.pid)
        postgres_pid = int((run.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        redis_socket = re.search(r"Redis\s+unix://(\S+?)\?", run.log).group(1)
        redis_pids = processes_mentioning(redis_socket)
        assert alive(postgres_pid) and redis_pids

        assert run.interrupt() == 0, run.log
        assert not [pid for pid in children if alive(pid)]
        assert not alive(postgres_pid), "embedded PostgreSQL still running"
        assert not [pid for pid in redis_pids if alive(pid)], "embedded Redis still running"
        assert not (tmp_path / ".data" / "dev-stack.json").exists()

        again = run.restart(tmp_path)
        again.wait_until_ready()
        assert "already has data: not seeding" in again.log
        mentee_id = str(decode_token(tokens["mentee"], settings).user_id)
        items = httpx.get(f"{again.base}/api/v1/mentor/workqueue", timeout=10,
                          params={"mentee_id": mentee_id, "limit": 200},
                          headers={"Authorization": f"Bearer {again.tokens()['mentor']}"})
        assert items.status_code == 200, items.text
        assert item_id in {item["id"] for item in items.json()["items"]}
        # make reports the interrupt and dies of it, as after a terminal's Ctrl-C.
        assert again.interrupt() in (0, -signal.SIGINT), again.log
        assert "Stopped." in again.log
    finally:
        run.kill()
