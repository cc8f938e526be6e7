"""The matcher as worker jobs (thin calls to app/services/matching/execution.py).

arq runs a job at least once: a run records its result by job id and commits everything in
one transaction, so a second delivery of the same job changes nothing. Tries are counted on
the run's row, not by arq: a worker that dies mid-run is found by the lease sweep below,
which re-queues the run under a new arq job id (arq's own in-progress key for the dead job
lives as long as the job timeout); a try that fails with an error asks arq to retry
(`Retry`, backoff 2^try s) until the run's last try.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from arq import Retry, func

from app.core.jobqueue import AUTO_MATCH_JOB
from app.core.jobspec import Periodic
from app.services.matching.execution import (
    RunWillRetry,
    execute_matching_run,
    recover_stale_runs,
)


def _ids(values: list[str] | None) -> list[uuid.UUID] | None:
    return [uuid.UUID(v) for v in values] if values is not None else None


async def auto_match_mentors(ctx: dict[str, Any], *, requested_by: str | None = None,
                             mentee_ids: list[str] | None = None,
                             mentor_ids: list[str] | None = None,
                             run_job_id: str | None = None) -> dict[str, Any]:
    """One matcher run (or dry run); its result goes to `matching_runs` under this job's id,
    or under `run_job_id` when the sweep re-queued a crashed run under a new arq job id."""
    try:
        return await execute_matching_run(
            ctx["db"], settings=ctx["settings"], job_id=run_job_id or ctx["job_id"],
            requested_by=uuid.UUID(requested_by) if requested_by else None,
            mentee_ids=_ids(mentee_ids), mentor_ids=_ids(mentor_ids),
        )
    except RunWillRetry as retry:
        raise Retry(defer=timedelta(seconds=2 ** retry.attempt)) from retry


async def recover_matching_runs(ctx: dict[str, Any]) -> dict[str, int]:
    """Runs whose worker died (lease expired): re-queued, or failed after their last try."""
    return await recover_stale_runs(ctx["db"], settings=ctx["settings"],
                                    redis=ctx["redis_app"])


FUNCTIONS = [
    # A run takes seconds at full size; a short timeout keeps arq's in-progress key short.
    # arq's tries only bound the retries of failed tries (the run's row counts them).
    func(auto_match_mentors, name=AUTO_MATCH_JOB, timeout=300, max_tries=12),
]
CRON_JOBS = [
    # Within lease + one period of a worker's death its run is re-queued (or failed).
    Periodic(recover_matching_runs, name="cron:recover_matching_runs",
             every="match_recovery_interval_seconds", timeout=60, keep_result=600),
]
