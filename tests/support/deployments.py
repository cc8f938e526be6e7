"""Whole deployments for the operations tests: a migrated database of their own, an API
(uvicorn) and an arq worker as real processes, sharing the test run's Redis database under
a prefix of their own, each through a Redis ACL user that may only touch keys under its
prefix (a key outside it would be refused and show in `ACL LOG`)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from app.config import Settings
from tests.support.harness import ROOT, ServerHarness
from tests.support.live import LiveServer, free_port
from tests.support.token_audit import LOG_FILES


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@dataclass
class Deployment:
    name: str
    prefix: str
    database: str
    database_url: str
    redis_user: str
    redis_password: str
    env: dict[str, str]
    settings: Settings
    api: LiveServer | None = None
    worker: subprocess.Popen | None = None
    worker_log: Path | None = None
    worker_metrics_port: int = field(default_factory=free_port)
    scraped: str = ""  # the worker's last /metrics text, for the tests

    @property
    def worker_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_metrics_port}/metrics"

    def start(self) -> None:
        env = {**self.env, "WORKER_METRICS_PORT": str(self.worker_metrics_port)}
        self.api = LiveServer.start(env)
        log = tempfile.NamedTemporaryFile(prefix=f"worker-{self.name}-", suffix=".log",
                                          delete=False)
        with log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "arq", "app.workers.WorkerSettings"], cwd=ROOT,
                env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        self.worker_log = Path(log.name)
        LOG_FILES.append(self.worker_log)

    def stop_worker(self, timeout: float = 60) -> int:
        """SIGTERM (the worker finishes, drains its loops and exits); its exit status."""
        if self.worker is None:
            return 0
        if self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        return self.worker.returncode

    def stop(self) -> None:
        self.stop_worker()
        if self.api is not None:
            self.api.stop()

    def worker_logs(self) -> str:
        return self.worker_log.read_text(errors="replace") if self.worker_log else ""


def create_deployment(servers: ServerHarness, settings: Settings, name: str,
                      **environment: str) -> Deployment:
    """A migrated database and a Redis ACL user limited to the deployment's prefix (call
    `create_acl_user` with its `redis_user` before starting it)."""
    tag = uuid.uuid4().hex[:8]
    database = f"{servers.name}_{name}"
    url = servers.create_database(database)
    prefix = f"{servers.prefix}dep{name}:"  # under the run's prefix: runs never meet
    user, password = f"mtest-{name}-{tag}", secrets.token_hex(16)
    redis_url = with_credentials(servers.redis_url, user, password)
    env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
           **{key.upper(): value for key, value in environment.items()}}
    migrated = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT,
                              env={**os.environ, **env}, capture_output=True, text=True)
    if migrated.returncode != 0:
        raise RuntimeError(f"alembic upgrade failed:\n{migrated.stdout}\n{migrated.stderr}")
    local = settings.model_copy(update={
        "database_url": url, "redis_prefix": prefix,
        **{key: type(getattr(settings, key))(value) for key, value in environment.items()},
    })
    return Deployment(name, prefix, database, url, user, password, env, local)


async def create_acl_user(redis, deployment: Deployment) -> None:
    await redis.execute_command("ACL", "SETUSER", deployment.redis_user, "reset", "on",
                                f">{deployment.redis_password}",
                                f"~{deployment.prefix}*", "&*", "+@all")


async def delete_acl_user(redis, deployment: Deployment) -> None:
    await redis.execute_command("ACL", "DELUSER", deployment.redis_user)


async def acl_denials(redis, deployment: Deployment) -> list[dict]:
    entries = await redis.execute_command("ACL", "LOG")
    return [entry for entry in map(_as_dict, entries)
            if entry.get("username") == deployment.redis_user]


def _as_dict(entry) -> dict:
    if isinstance(entry, dict):
        return entry
    return dict(zip(entry[::2], entry[1::2], strict=True))
