"""A compose project driven from the host: the Docker CLI and Compose v2 or v1.29.

Every compose call gets the same environment (compose interpolates `${JWT_SECRET:?}` even for
`ps` and `down`), and the same project name (compose.yaml has no top-level `name:`, which
v1.29 does not know).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class StepFailed(RuntimeError):
    """A check of the image test did not hold."""


def run(args: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository root; on failure raise with its output."""
    result = subprocess.run(list(args), cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise StepFailed(f"{' '.join(args)} exited {result.returncode}:\n"
                         f"{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) when present, else `docker-compose` (v1.29)."""
    if run(["docker", "compose", "version"], check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise StepFailed("neither `docker compose` nor `docker-compose` is installed")


def inspect(container: str) -> dict:
    return json.loads(run(["docker", "inspect", container]).stdout)[0]


def health(container: str) -> str:
    """`healthy`, `unhealthy`, `starting`, or the state (`exited`...) when not running."""
    state = inspect(container)["State"]
    if state["Status"] != "running":
        return state["Status"]
    return (state.get("Health") or {}).get("Status", "none")


@dataclass
class Stack:
    project: str
    variables: dict[str, str]
    compose: list[str] = field(default_factory=compose_command)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.variables}

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run([*self.compose, "-p", self.project, *args], env=self.env, check=check,
                   timeout=timeout)

    def containers(self, service: str) -> list[str]:
        """Ids of the service's containers (running or not), in replica order."""
        ids = self("ps", "-a", "-q", service).stdout.split()
        return sorted(ids, key=lambda cid: inspect(cid)["Name"])

    def container(self, service: str) -> str:
        ids = self.containers(service)
        if not ids:
            raise StepFailed(f"no container for service {service}")
        return ids[0]

    def host_port(self, container: str, port: int = 8000) -> int:
        """The host port published for the container's `port`."""
        lines = run(["docker", "port", container, f"{port}/tcp"]).stdout.split()
        return int(lines[0].rsplit(":", 1)[1])

    def leftovers(self) -> list[str]:
        """Containers, networks and volumes of the project still present."""
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind, listing in (("container", ["ps", "-a"]), ("network", ["network", "ls"]),
                              ("volume", ["volume", "ls"])):
            names = run(["docker", *listing, "-q", "--filter", label]).stdout.split()
            found += [f"{kind} {name}" for name in names]
        return found


async def wait_for(what: str, predicate, within: float, interval: float = 0.5):
    """Poll `predicate` (sync or async) until it returns a truthy value; return that value."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if asyncio.iscoroutine(last):
                last = await last
        except Exception as exc:  # a poll that fails is retried until the deadline
            last = exc
        if last and not isinstance(last, Exception):
            return last
        await asyncio.sleep(interval)
    raise StepFailed(f"timed out after {within:.0f} s waiting for {what} (last: {last!r})")
