"""Shared by the benchmarks that drive a real uvicorn process: the token key, waiting for
`/healthz`, and starting children that never outlive the bench (`spawn`, `stop`)."""

from __future__ import annotations

import asyncio
import atexit
import os
import secrets
import signal
import subprocess
import sys

import httpx

# Servers started by a benchmark run as production (ENVIRONMENT=production), which refuses
# the public development key: they and the tokens share this one, new for each run.
BENCH_JWT_SECRET = secrets.token_urlsafe(32)

# A benchmark drives thousands of requests a minute with a handful of tokens: the rate
# limiter still runs (its Redis round trip is part of what is measured) with room for them.
# The servers inherit this environment (every benchmark passes {**os.environ, ...}).
for _limit in ("RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_SERVICE_PER_MINUTE"):
    os.environ.setdefault(_limit, "100000000")


async def wait_healthy(base_url: str, process: subprocess.Popen | None = None,
                       within: float = 60.0) -> None:
    """Poll `/healthz` until it answers 200; fail early if `process` (the server) exits."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(int(within / 0.1)):
            if process is not None and process.poll() is not None:
                raise RuntimeError("uvicorn exited before it was healthy")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("uvicorn did not become healthy")


# --- children that never outlive the benchmark ---------------------------------------------
# A benchmark starts servers (uvicorn, arq workers); Ctrl-C, `kill` or a crash of the bench
# must not leave them running against a dropped database. Three layers: each child leads its
# own process group (stopped whole, with any workers it forked); atexit and SIGTERM/SIGHUP
# (turned into SystemExit, so `finally` blocks drop scratch databases too) stop every group
# still running; and the kernel sends the child SIGTERM if the bench dies without cleanup
# (SIGKILL): PR_SET_PDEATHSIG.

_CHILDREN: list[subprocess.Popen] = []
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child, between fork and exec
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the other two layers remain
        pass


def spawn(command: list[str], *, preexec=None, **popen_kwargs) -> subprocess.Popen:
    """`subprocess.Popen(command, **popen_kwargs)`, as a child stopped with the bench
    (`preexec`: more to run in the child before exec, e.g. raising a limit)."""
    install_cleanup()

    def before_exec() -> None:
        _die_with_parent()
        if preexec is not None:
            preexec()

    process = subprocess.Popen(command, start_new_session=True, preexec_fn=before_exec,
                               **popen_kwargs)
    _CHILDREN.append(process)
    return process


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM to the child's process group (uvicorn shuts down gracefully), SIGKILL if it
    has not exited within `timeout`."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    if process in _CHILDREN:
        _CHILDREN.remove(process)


def stop_all() -> None:
    for process in list(_CHILDREN):
        stop(process)


_installed = False


def install_cleanup() -> None:
    """atexit stops every spawned child; SIGTERM and SIGHUP exit like Ctrl-C does (unwinding
    `finally` blocks and context managers). Idempotent; call it first in a bench's main."""
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(stop_all)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, _frame: sys.exit(128 + signum))
