"""The outbox relay as a worker task.

`outbox_relay_loop` relays for `worker_loop_seconds` (22 s), polling every
`relay_poll_seconds` when idle, so commit -> XADD stays well under a second. A cron tick
every 20 s starts one (one per tick across all workers: arq's unique cron job id), so
consecutive loops overlap by a couple of seconds, and a fresh or dead worker's relay starts
within 20 s. Overlapping or extra relays are safe: rows are claimed with
`FOR UPDATE SKIP LOCKED` and a lease.

`python -m app.services.events.relay [seconds]` runs a relay as a process of its own.
"""

from __future__ import annotations

from typing import Any

from arq import cron

from app.config import get_settings
from app.services.events.relay import run_relay
from app.workers import CRON_JOBS


async def outbox_relay_loop(ctx: dict[str, Any]) -> int:
    settings = ctx["settings"]
    return await run_relay(ctx["db"], ctx["redis_app"], settings=settings,
                           seconds=settings.worker_loop_seconds)


CRON_JOBS.append(cron(
    outbox_relay_loop, name="outbox_relay_loop", second={0, 20, 40}, unique=True,
    timeout=get_settings().worker_loop_seconds + 60, keep_result=0,
))

