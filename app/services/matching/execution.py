"""A matcher run on a worker, from claim to result: lease, retries, `matching.run_finished`.

* Claim: the run's row (by `job_id`) goes to `running` with `attempts + 1` and a fresh
  `heartbeat_at`, only if it is `queued` or its lease has expired (its worker died). A job
  delivered again for a finished run, or for one another worker holds, just reports it.
* Lease: while the run works, a background task renews `heartbeat_at` every
  `match_heartbeat_seconds`. The sweep (`recover_stale_runs`, a cron job every 15 s) finds
  runs whose heartbeat is older than `match_lease_seconds` and re-queues them under a new
  arq job id (arq's own key for the dead job lives as long as its timeout), or marks them
  `failed` once `match_max_attempts` tries are used. A crash is thus noticed within
  lease + 15 s (45 s by default), never left `running`.
* Fencing: every write of the run's outcome is conditioned on `attempts` still being this
  try's; a try that lost its lease (a paused worker that comes back) rolls back its work.
* An error in a try that is not the last re-queues the run (`RunWillRetry`: the job asks arq
  to retry with a backoff); the last one marks it `failed`.
* The final state (`done`, `failed`, `skipped`) commits with a `matching.run_finished`
  event for every director (their streams and webhooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from redis.asyncio import Redis
from sqlalchemy import and_, func, or_, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.db import Database
from app.core.dberrors import sqlstate_of
from app.core.jobqueue import AUTO_MATCH_JOB, enqueue_job
from app.core.outbox import director_ids, emit
from app.models import MatchingRun
from app.services.matching.engine import auto_match
from app.services.matching.runs import get_matching_run, run_summary
from app.services.matching.weights import Weights
from app.services.matching.writes import MATCHER_LOCK_KEY

log = structlog.get_logger("app.matching")

RUN_FINISHED = "matching.run_finished"


class RunWillRetry(Exception):  # noqa: N818 (a signal, not an error)
    """This try failed and the run is queued again: the job should be retried."""

    def __init__(self, attempt: int, cause: str) -> None:
        super().__init__(cause)
        self.attempt = attempt


class LostLease(Exception):  # noqa: N818
    """Another try took the run over while this one worked: its work is rolled back."""


def _lease_expired(settings: Settings) -> Any:
    return MatchingRun.heartbeat_at < func.now() - func.make_interval(
        0, 0, 0, 0, 0, 0, settings.match_lease_seconds)


def _ids(values: Any) -> list[uuid.UUID] | None:
    return [uuid.UUID(str(v)) for v in values] if values is not None else None


async def _emit_finished(session: AsyncSession, run: MatchingRun) -> None:
    await emit(session, type=RUN_FINISHED, data={
        "job_id": run.job_id, "status": run.status, "dry_run": run.dry_run,
        "assigned": run.assigned_count if not run.dry_run else 0,
        "proposals": run.assigned_count if run.dry_run else None,
        "unplaced": run.unplaced_count, "total_fit": run.total_fit,
        "attempts": run.attempts, "requested_by": run.requested_by, "error": run.error,
        "finished_at": run.finished_at,
    }, recipients=await director_ids(session))


async def _heartbeat(database: Database, job_id: str, attempt: int, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            async with database.transaction(None) as session:
                await session.execute(
                    update(MatchingRun)
                    .where(MatchingRun.job_id == job_id, MatchingRun.status == "running",
                           MatchingRun.attempts == attempt)
                    .values(heartbeat_at=func.now()))
        except Exception as exc:  # a missed beat is not fatal; the next one may succeed
            log.warning("matching_heartbeat_failed", job_id=job_id, error=str(exc))


async def execute_matching_run(
    database: Database, *, settings: Settings, job_id: str,
    requested_by: uuid.UUID | None = None,
    mentee_ids: list[uuid.UUID] | None = None, mentor_ids: list[uuid.UUID] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run the matcher for `job_id` on the workers' engine (acting as the system) and record
    the result on the run's row (see the module doc). The run's dry-run flag, weights and
    scope are read from its row (written when it was requested); `mentee_ids` /
    `mentor_ids` are for callers that start a run without requesting it first."""
    started = time.perf_counter()
    at = now or datetime.now(UTC)
    scope = {"mentee_ids": [str(i) for i in mentee_ids] if mentee_ids is not None else None,
             "mentor_ids": [str(i) for i in mentor_ids] if mentor_ids is not None else None}
    async with database.transaction(None) as session:  # visible as `running` at once
        claimed = (await session.execute(
            pg_insert(MatchingRun)
            .values(id=uuid.uuid4(), job_id=job_id, status="running", requested_by=requested_by,
                    started_at=func.now(), attempts=1, heartbeat_at=func.now(), scope=scope)
            .on_conflict_do_update(
                index_elements=["job_id"],
                set_={"status": "running", "started_at": func.now(),
                      "attempts": MatchingRun.attempts + 1, "heartbeat_at": func.now()},
                where=or_(MatchingRun.status == "queued",
                          and_(MatchingRun.status == "running", _lease_expired(settings))),
            )
            .returning(MatchingRun.id, MatchingRun.attempts, MatchingRun.dry_run,
                       MatchingRun.weights, MatchingRun.scope)
        )).first()
        if claimed is None:  # finished, or another worker holds it: report it
            return run_summary(await get_matching_run(session, job_id=job_id))
    attempt = claimed.attempts
    stored = claimed.scope or {}
    if mentee_ids is None and mentor_ids is None:
        mentee_ids, mentor_ids = _ids(stored.get("mentee_ids")), _ids(stored.get("mentor_ids"))
    weights = (Weights(**claimed.weights) if claimed.weights
               else Weights.from_settings(settings)).normalised()
    owned = and_(MatchingRun.job_id == job_id, MatchingRun.status == "running",
                 MatchingRun.attempts == attempt)

    heartbeat = asyncio.create_task(
        _heartbeat(database, job_id, attempt, settings.match_heartbeat_seconds))
    locked = False
    try:
        async with database.transaction(None) as session:
            # Also bounds the waits for mentor rows and for a director's concurrent insert.
            await session.execute(text("select set_config('lock_timeout', :ms, true)"),
                                  {"ms": str(int(settings.match_lock_timeout_seconds * 1000))})
            if not claimed.dry_run:  # one run that writes at a time; dry runs write nothing
                await session.execute(text("select pg_advisory_xact_lock(:key)"),
                                      {"key": MATCHER_LOCK_KEY})
            locked = True
            outcome = await auto_match(session, settings=settings, at=at, weights=weights,
                                       dry_run=claimed.dry_run, run_id=claimed.id,
                                       mentee_ids=mentee_ids, mentor_ids=mentor_ids)
            done = await session.execute(update(MatchingRun).where(owned).values(
                status="done", finished_at=datetime.now(UTC), error=None,
                assigned_count=outcome.assigned, unplaced_count=len(outcome.unplaced),
                total_fit=outcome.total_fit, unplaced=outcome.unplaced,
                solver_ms=outcome.solver_ms, duration_ms=_ms_since(started),
                weights=weights.as_dict(),
            ))
            if done.rowcount != 1:
                raise LostLease(job_id)
            await _emit_finished(session, await get_matching_run(session, job_id=job_id))
    except LostLease:
        log.warning("matching_run_lost_lease", job_id=job_id, attempt=attempt)
    except DBAPIError as exc:
        if not locked and sqlstate_of(exc) == "55P03":  # lock_not_available: another run
            waited = f"{settings.match_lock_timeout_seconds:g} s"
            await _finish(database, owned, "skipped",
                          f"another run held the matcher lock for {waited}", started)
            log.info("matching_run_skipped", job_id=job_id)
        else:
            await _failed_try(database, settings, owned, attempt, exc, started)
    except Exception as exc:
        await _failed_try(database, settings, owned, attempt, exc, started)
    else:
        log.info("matching_run_done", job_id=job_id, dry_run=claimed.dry_run,
                 assigned=outcome.assigned, unplaced=len(outcome.unplaced),
                 total_fit=outcome.total_fit, solver_ms=outcome.solver_ms,
                 load_ms=outcome.load_ms, candidates_ms=outcome.candidates_ms,
                 write_ms=outcome.write_ms, attempt=attempt)
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    async with database.transaction(None) as session:
        return run_summary(await get_matching_run(session, job_id=job_id))


async def _failed_try(database: Database, settings: Settings, owned: Any, attempt: int,
                      exc: Exception, started: float) -> None:
    error = f"{type(exc).__name__}: {exc}"
    if attempt < settings.match_max_attempts:
        async with database.transaction(None) as session:
            requeued = await session.execute(update(MatchingRun).where(owned).values(
                status="queued", heartbeat_at=None, error=error[:2000]))
        if requeued.rowcount == 1:
            raise RunWillRetry(attempt, error) from exc
        return
    await _finish(database, owned, "failed", error, started)
    raise exc


async def _finish(database: Database, owned: Any, status: str, error: str,
                  started: float) -> None:
    async with database.transaction(None) as session:
        finished = await session.execute(update(MatchingRun).where(owned).values(
            status=status, finished_at=datetime.now(UTC), error=error[:2000],
            duration_ms=_ms_since(started)).returning(MatchingRun.job_id))
        job_id = finished.scalar()
        if job_id is not None:
            await _emit_finished(session, await get_matching_run(session, job_id=job_id))


async def recover_stale_runs(database: Database, *, settings: Settings,
                             redis: Redis) -> dict[str, int]:
    """Runs whose worker stopped renewing the lease: re-queued under a new arq job id, or
    `failed` (with `matching.run_finished`) when their last try is used. The enqueue
    happens before the commit: if Redis refuses, nothing changes and the next sweep tries
    again."""
    async with database.transaction(None) as session:
        stale = (await session.execute(text("""
            update matching_runs
               set status = case when attempts >= :max then 'failed' else 'queued' end,
                   finished_at = case when attempts >= :max then now() end,
                   error = :error,
                   heartbeat_at = null
             where status = 'running'
               and coalesce(heartbeat_at, started_at) < now() - make_interval(secs => :lease)
            returning job_id, status, attempts
        """), {"max": settings.match_max_attempts, "lease": settings.match_lease_seconds,
              "error": "the worker running it stopped (no heartbeat for "
                       f"{settings.match_lease_seconds:g} s)"})).all()
        for row in stale:
            if row.status == "failed":
                await _emit_finished(session, await get_matching_run(session,
                                                                     job_id=row.job_id))
            else:
                await enqueue_job(redis, settings, AUTO_MATCH_JOB,
                                  job_id=f"{row.job_id}:try-{row.attempts + 1}",
                                  run_job_id=row.job_id)
    if stale:
        log.warning("matching_runs_recovered", requeued=sum(r.status == "queued" for r in stale),
                    failed=sum(r.status == "failed" for r in stale))
    return {"requeued": sum(r.status == "queued" for r in stale),
            "failed": sum(r.status == "failed" for r in stale)}


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)

