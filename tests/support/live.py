"""A real uvicorn process on a free port (browsers, multi-process metrics, raw logs).

Uses the test run's database and Redis (the environment the `servers` fixture set), so
depend on the `settings` fixture before starting one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.token_audit import LOG_FILES

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, env: dict[str, str] | None = None, *uvicorn_args: str) -> LiveServer:
        port = free_port()
        log_file = tempfile.NamedTemporaryFile(prefix="uvicorn-", suffix=".log", delete=False)
        # The real app with the test harness's problem recorder around it (outermost).
        command = [sys.executable, "-m", "uvicorn", "--factory",
                   "tests.support.observed_problems:recording_app",
                   "--host", "127.0.0.1", "--port", str(port), *uvicorn_args]
        with log_file:
            process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **(env or {})},
                                       stdout=log_file, stderr=subprocess.STDOUT)
        LOG_FILES.append(Path(log_file.name))  # scanned for tokens at the end of the run
        return cls(f"http://127.0.0.1:{port}", process, Path(log_file.name))

    def wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited early:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start:\n{self.logs()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Graceful (SIGINT: the lifespan shutdown runs), killed if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def live_servers(count: int, env: dict[str, str] | None = None,
                 *uvicorn_args: str) -> Iterator[list[LiveServer]]:
    """`count` servers, started in parallel (imports are slow on a busy machine)."""
    servers = [LiveServer.start(env, *uvicorn_args) for _ in range(count)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


@contextmanager
def live_server(env: dict[str, str] | None = None, *uvicorn_args: str) -> Iterator[LiveServer]:
    with live_servers(1, env, *uvicorn_args) as (server,):
        yield server
