"""The sessions domain's worker jobs (collected by app/workers): reminders and follow-ups.

Both are cron ticks (`SESSION_TIMERS_INTERVAL_SECONDS`, default every minute) that drain
what is due in batches, each batch its own transaction on the workers' engine. A tick is
never retried (`max_tries=1`): the next one picks up whatever a failed or killed tick left,
because nothing is marked done before its batch commits. Each tick has one job id for all
workers; even when two workers run batches at once, SKIP LOCKED hands each due timer to
one of them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core.jobspec import Periodic
from app.services.sessions.followups import sweep_followups
from app.services.sessions.reminders import send_due_reminders

BATCH = 500


async def send_session_reminders(ctx: dict[str, Any]) -> dict[str, int]:
    claimed = sent = 0
    while True:
        async with ctx["db"].transaction(None) as session:
            run = await send_due_reminders(session, now=datetime.now(UTC), batch=BATCH)
        claimed, sent = claimed + run.claimed, sent + run.sent
        if run.claimed < BATCH:
            return {"claimed": claimed, "sent": sent}


async def sweep_session_followups(ctx: dict[str, Any]) -> dict[str, int]:
    claimed = opened = 0
    while True:
        async with ctx["db"].transaction(None) as session:
            run = await sweep_followups(session, settings=ctx["settings"],
                                        now=datetime.now(UTC), batch=BATCH)
        claimed, opened = claimed + run.claimed, opened + run.opened
        if run.claimed < BATCH:
            return {"claimed": claimed, "opened": opened}


FUNCTIONS: list[Any] = []
CRON_JOBS = [
    Periodic(send_session_reminders, name="cron:send_session_reminders",
             every="session_timers_interval_seconds", offset=10, timeout=55, max_tries=1,
             keep_result=3600),
    Periodic(sweep_session_followups, name="cron:sweep_session_followups",
             every="session_timers_interval_seconds", offset=40, timeout=55, max_tries=1,
             keep_result=3600),
]
