"""What a domain's `jobs` module exports for the workers, besides plain arq functions.

- `Periodic`: a cron job whose period is a setting (so tests run several periods in
  seconds). The worker turns it into an arq cron job for its settings. arq fires cron jobs
  at wall-clock times matching second/minute/hour sets, so a period must divide a minute,
  an hour or a day (2 s, 15 s, 5 min, 1 h...): ticks fall at the same instants on every
  worker, and `unique=True` gives each tick one job id (`<name>:<tick ms>`), so however many
  workers run, each tick runs once.
- `Loop`: work that runs for the worker's whole life beside its jobs (the outbox relay, the
  webhook deliveries). Not an arq job: nothing to re-queue every few seconds, nothing to
  retry, and a restart that stops it is no failure. `drain` does the same work once, until
  nothing is left: the worker calls it at shutdown, which is how `--burst` drains them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from arq.cron import CronJob, cron

from app.config import Settings, cron_period_ok


def cron_fields(period: int, offset: int = 0) -> dict[str, Any]:
    """arq `cron()` fields for a tick every `period` seconds, `offset` seconds into each
    period (periods counted from midnight)."""
    if not cron_period_ok(period):
        raise ValueError(f"a cron period of {period} s does not divide a minute, an hour or a day")
    offset %= period
    if period < 60:
        return {"second": {s for s in range(60) if s % period == offset}}
    if period < 3600:
        step = period // 60
        return {"minute": _every(step, offset // 60, 60), "second": offset % 60}
    step = period // 3600
    return {"hour": _every(step, offset // 3600, 24), "minute": offset // 60 % 60,
            "second": offset % 60}


def _every(step: int, start: int, size: int) -> set[int] | None:
    return None if step == 1 else {n for n in range(size) if n % step == start}


@dataclass(frozen=True)
class Periodic:
    """A cron job: `every` names the Settings field holding its period in seconds."""

    coroutine: Callable[..., Awaitable[Any]]
    name: str
    every: str
    offset: int = 0
    timeout: float | None = None
    keep_result: float | None = None
    # A cancelled tick (its worker stopped) runs once more on the next worker; a tick that
    # fails is not retried: the next tick does the work.
    max_tries: int = 2

    def cron(self, settings: Settings) -> CronJob:
        return cron(self.coroutine, name=self.name, unique=True, microsecond=0,
                    timeout=self.timeout, keep_result=self.keep_result,
                    max_tries=self.max_tries,
                    **cron_fields(int(getattr(settings, self.every)), self.offset))


@dataclass(frozen=True)
class Loop:
    """`run(ctx)` works until cancelled; `drain(ctx)` works until nothing is left and returns
    how much it did. `ctx` is the worker's (settings, db, redis_app)."""

    name: str
    run: Callable[[dict[str, Any]], Awaitable[Any]]
    drain: Callable[[dict[str, Any]], Awaitable[int]]
