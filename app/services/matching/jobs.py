"""The matcher as a worker job (a thin call to the engine).

arq runs a job at least once: the matcher records its result by job id and commits
everything in one transaction, so a second run of the same job changes nothing. A run may
take seconds at full size; `max_tries` covers a worker lost mid-run.
"""

from __future__ import annotations

import uuid
from typing import Any

from arq import func

from app.core.jobqueue import AUTO_MATCH_JOB
from app.services.matching.engine import execute_matching_run


def _ids(values: list[str] | None) -> list[uuid.UUID] | None:
    return [uuid.UUID(v) for v in values] if values is not None else None


async def auto_match_mentors(ctx: dict[str, Any], *, requested_by: str | None = None,
                             mentee_ids: list[str] | None = None,
                             mentor_ids: list[str] | None = None) -> dict[str, Any]:
    """One matcher run; its result goes to `matching_runs` under this job's id."""
    return await execute_matching_run(
        ctx["db"], settings=ctx["settings"], job_id=ctx["job_id"],
        requested_by=uuid.UUID(requested_by) if requested_by else None,
        mentee_ids=_ids(mentee_ids), mentor_ids=_ids(mentor_ids),
    )


FUNCTIONS = [func(auto_match_mentors, name=AUTO_MATCH_JOB, timeout=600, max_tries=3)]
CRON_JOBS: list = []
