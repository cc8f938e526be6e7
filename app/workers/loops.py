"""Running the domains' `Loop`s beside a worker's jobs (app/core/jobspec.py).

Each loop runs in a task of its own for the worker's whole life; one that crashes is logged
and restarted after a short pause (its work is claimed with leases, so a restart loses
nothing). `stop` cancels them, then drains each once, in order, within `drain_seconds` in
all: what is left stays claimable by any other worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog

from app.core.jobspec import Loop

log = structlog.get_logger("app.workers")

RESTART_PAUSE_SECONDS = 1.0


class LoopRunner:
    def __init__(self, loops: Sequence[Loop], ctx: dict[str, Any]) -> None:
        self.loops = list(loops)
        self.ctx = ctx
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._supervise(loop), name=f"loop:{loop.name}")
                      for loop in self.loops]

    async def _supervise(self, loop: Loop) -> None:
        while True:
            try:
                await loop.run(self.ctx)
                log.warning("worker_loop_returned", loop=loop.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker_loop_crashed", loop=loop.name)
            await asyncio.sleep(RESTART_PAUSE_SECONDS)

    async def stop(self, drain_seconds: float) -> dict[str, int | None]:
        """Cancel the loops, then drain each once. Returns what each drain did (None: it
        ran out of time or failed)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        deadline = time.monotonic() + drain_seconds
        drained: dict[str, int | None] = {}
        for loop in self.loops:
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    drained[loop.name] = await loop.drain(self.ctx)
            except TimeoutError:
                log.warning("worker_drain_timed_out", loop=loop.name, seconds=drain_seconds)
                drained[loop.name] = None
            except Exception:
                log.exception("worker_drain_failed", loop=loop.name)
                drained[loop.name] = None
        log.info("worker_loops_drained", **drained)
        return drained
