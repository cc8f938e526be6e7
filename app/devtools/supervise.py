"""The child processes of `mentorship dev` (the API and the workers): start, watch, restart
with a short backoff, stop.

Each child runs in its own process group, so a terminal Ctrl-C reaches only `mentorship dev`,
which stops the children in order; on Linux they also get SIGTERM if it dies without
cleaning up (PR_SET_PDEATHSIG), so they are never orphaned. A child that exits on its own is
restarted after 1, 2, 4... seconds (at most MAX_BACKOFF_SECONDS); the fifth failure within a
minute stops the stack with that reason: a crash loop says why instead of scrolling forever.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

STOP_GRACE_SECONDS = 10.0
MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 8.0


class GaveUp(Exception):
    """A child failed MAX_FAILURES times within FAILURE_WINDOW_SECONDS."""


def _child_setup() -> None:  # runs in the child between fork and exec
    if sys.platform == "linux":
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen | None = None
    failures: deque[float] = field(default_factory=deque)
    restart_at: float | None = None  # monotonic time of the next start, after a failure

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: PLW1509 (no threads in the parent)
            self.argv, env=self.env, start_new_session=True, pass_fds=self.pass_fds,
            preexec_fn=_child_setup)
        self.restart_at = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 max_failures: int = MAX_FAILURES,
                 window_seconds: float = FAILURE_WINDOW_SECONDS) -> None:
        self.say = say
        self.clock = clock
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.children: dict[str, Child] = {}

    def spawn(self, name: str, argv: list[str], env: dict[str, str],
              pass_fds: tuple[int, ...] = ()) -> Child:
        child = Child(name, argv, env, pass_fds)
        self.children[name] = child
        child.start()
        self.say(f"  started {name} (pid {child.process.pid}): {' '.join(argv[1:])}")
        return child

    def any_exited(self) -> bool:
        return any(not child.running for child in self.children.values())

    def check(self) -> None:
        """Restart children that exited (once their backoff passed). Raises GaveUp."""
        now = self.clock()
        for child in self.children.values():
            if child.running:
                continue
            if child.restart_at is None:  # just found dead
                status = child.process.returncode
                while child.failures and now - child.failures[0] > self.window_seconds:
                    child.failures.popleft()
                child.failures.append(now)
                if len(child.failures) >= self.max_failures:
                    raise GaveUp(f"{child.name} exited {len(child.failures)} times within "
                                 f"{self.window_seconds:g} s (last status {status}): "
                                 "see its log above")
                delay = min(MAX_BACKOFF_SECONDS, 2.0 ** (len(child.failures) - 1))
                child.restart_at = now + delay
                self.say(f"  {child.name} exited with status {status}: restarting in "
                         f"{delay:g} s (failure {len(child.failures)} of {self.max_failures}"
                         f" allowed in {self.window_seconds:g} s)")
            elif now >= child.restart_at:
                child.start()
                self.say(f"  restarted {child.name} (pid {child.process.pid})")

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to every child's process group, SIGKILL after the grace period."""
        processes = {name: child.process for name, child in self.children.items()
                     if child.process is not None}
        for process in processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for name, process in processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"  {name} did not stop in {grace_seconds:g} s: killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            # Anything the child left in its process group goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
