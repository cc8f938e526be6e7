"""The auto-matcher: places every unassigned mentee that can be placed, maximising total fit.

The model is an optimal capacitated assignment solved as a min-cost flow (OR-Tools):

    mentee (supply 1) ──fit arc──▶ mentor ──cap = free places──▶ sink (demand = mentees)
          │                            ▲
          ├──▶ hub ─── cap = places ───┘     catch-all route (only when top-K is partial)
          └──▶ unplaced ── cap = mentees - min(mentees, places) ──▶ sink

* Placement comes first by construction, not by a large bonus: the "unplaced" node can
  absorb only `mentees - min(mentees, places)` units, so every feasible flow places exactly
  `min(mentees, places)` mentees, which is the most anyone can place (any mentor may take
  any mentee). Among those flows the solver maximises the total fit (costs = -fit x 1000:
  integers, as the solver needs).
* Candidates: the fit matrix is computed with NumPy in blocks of mentees; each mentee keeps
  its `match_top_k` best mentors and each mentor its best mentees (twice its free places),
  by `argpartition`, so 20K x 1K is ~500K arcs instead of 20M. The mentor side matters
  when places are scarce: popular mentors fill up, and the mentors nobody ranked first
  still have arcs to the mentees that suit them. When K covers every mentor with a free
  place the model is exact (the tests check it against an exact assignment solver).
* With a partial top-K, placing everyone might need a mentor outside a mentee's list: the
  hub route (mentee -> hub -> any mentor, costed at the mentor's load term, a lower bound of
  any fit with that mentor) keeps the flow feasible with n + m extra arcs instead of n x m.
  The few mentees sent through the hub are then re-assigned among the places the hub used
  with an exact dense solve, so their real fits count.

Fit, in [0, 1] (weights in settings, see `app/config.py`):
  (w_specialty * specialty + w_timezone * timezone + w_load * load) / (sum of weights)
  specialty: share of the mentee's interests the mentor lists as specialties (case-
             insensitive). A share rather than Jaccard: a mentor with many specialties is
             no worse for a mentee whose interests they all cover.
  timezone:  1 - gap / 12, gap = |UTC offset difference| in hours on the 24 h circle
             (0..12), offsets taken at the time of the run (so DST is current).
  load:      1 - active mentees / max mentees, at the start of the run.

Concurrency: one run at a time (transaction-level advisory lock; a second run waits up to
`match_lock_timeout_seconds`, then ends as `skipped`). The run first locks the user rows of
the mentors and of the waiting mentees (`FOR NO KEY UPDATE`, so bookings' foreign-key checks
are not blocked), in id order as a director's assignment does
(app/services/relationships/assignments.py locks the mentee's and the mentor's rows FOR
UPDATE, in id order), so the two queue up and
never deadlock; it then counts each mentor's mentees with a snapshot taken after the locks,
so no concurrent assignment can push a mentor over `mentor_max_mentees`. Inserts still skip
a mentee assigned meanwhile (the partial unique index, ON CONFLICT DO NOTHING), and a final
check refuses to commit if any mentor would exceed its maximum. Everything a run writes
(assignments, their `assignment.created` events, the run's result) commits in one
transaction: a worker killed mid-run leaves nothing behind, and the retried job starts over.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import structlog
from sqlalchemy import bindparam, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.core.db import Database
from app.core.outbox import insert_events_sql, sql_rfc3339
from app.models import MatchingRun
from app.services.matching.runs import get_matching_run
from app.services.matching.solver import (
    REASON_SEPARATOR,
    SCALE,
    FitModel,
    Matching,
    MatchProblem,
    Weights,
    normalize_tags,
    solve_optimal,
)
from app.services.mentors.capacity import MENTOR_ZONE_SQL

log = structlog.get_logger("app.matching")

# Any constant bigint, the same for every matcher run (pg_advisory_xact_lock key).
MATCHER_LOCK_KEY = 0x6D656E746F72  # "mentor"
# Why a mentee was not placed.
NO_CANDIDATE = "no_candidate"  # no mentor had a free place at the start of the run
NO_CAPACITY = "no_capacity"  # fewer places than mentees: the places went to better fits
ASSIGNED_CONCURRENTLY = "assigned_concurrently"  # a director assigned them during the run


@dataclass
class MatchOutcome:
    assigned: int = 0
    total_fit: float = 0.0
    unplaced: dict[str, str] = field(default_factory=dict)  # mentee id -> reason
    mentees_considered: int = 0
    mentors_with_places: int = 0
    hub_mentees: int = 0
    load_ms: int = 0
    candidates_ms: int = 0
    solver_ms: int = 0
    write_ms: int = 0


def _offset_hours(zone: str | None, at: datetime, cache: dict[str | None, float]) -> float:
    if zone not in cache:
        try:
            offset = ZoneInfo(zone or "UTC").utcoffset(at)
        except (ValueError, KeyError):  # an unknown zone name: treat as UTC
            offset = None
        cache[zone] = offset.total_seconds() / 3600 if offset else 0.0
    return cache[zone]


_ID_LIST = ARRAY(UUID(as_uuid=True))


async def load_problem(session: AsyncSession, *, at: datetime,
                       mentee_ids: list[uuid.UUID] | None = None,
                       mentor_ids: list[uuid.UUID] | None = None) -> MatchProblem:
    """Unassigned mentees and every mentor, optionally limited to the given ids (a cohort),
    after locking them (see the module doc). A mentee who is also a mentor is left out
    (never matched with themselves)."""
    mentee_filter = " and u.id = any(:mentee_ids)" if mentee_ids is not None else ""
    mentor_filter = " and u.id = any(:mentor_ids)" if mentor_ids is not None else ""
    params: dict[str, Any] = {}
    binds = []
    if mentee_ids is not None:
        params["mentee_ids"] = mentee_ids
        binds.append(bindparam("mentee_ids", type_=_ID_LIST))
    if mentor_ids is not None:
        params["mentor_ids"] = mentor_ids
        binds.append(bindparam("mentor_ids", type_=_ID_LIST))
    unassigned = ("not exists (select 1 from assignments a"
                  " where a.mentee_id = u.id and a.ended_at is null)")
    # 1. Lock the mentors and the waiting mentees, in id order like a director's assignment
    #    (mentee and mentor rows, in id order): the two queue up, never deadlock.
    #    Deactivated users are neither matched nor locked.
    locked = list(await session.scalars(text(f"""
        select u.id from users u
         where u.active and ((u.is_mentor{mentor_filter})
            or (u.role = 'mentee' and not u.is_mentor{mentee_filter} and {unassigned}))
         order by u.id
           for no key update of u
    """).bindparams(*binds), params))
    # 2. Read them with a snapshot taken after the locks: no assignment to these mentors
    #    or of these mentees can commit any more before this run does, so the counts hold.
    mentors = (await session.execute(text(f"""
        select u.id, u.mentor_specialties, {MENTOR_ZONE_SQL} as zone, u.mentor_max_mentees,
               (select count(*) from assignments a
                 where a.mentor_id = u.id and a.ended_at is null) as active
          from users u
         where u.is_mentor and u.id = any(:locked)
         order by u.id
    """).bindparams(bindparam("locked", type_=_ID_LIST)), {"locked": locked})).all()
    mentees = (await session.execute(text(f"""
        select u.id, u.interests, u.timezone
          from users u
         where u.role = 'mentee' and not u.is_mentor and u.id = any(:locked) and {unassigned}
         order by u.id
    """).bindparams(bindparam("locked", type_=_ID_LIST)), {"locked": locked})).all()
    offsets: dict[str | None, float] = {}
    return MatchProblem(
        mentee_ids=[r.id for r in mentees],
        mentee_tags=[normalize_tags(r.interests) for r in mentees],
        mentee_offsets=np.array([_offset_hours(r.timezone, at, offsets) for r in mentees],
                                np.float64),
        mentor_ids=[r.id for r in mentors],
        mentor_tags=[normalize_tags(r.mentor_specialties) for r in mentors],
        mentor_offsets=np.array([_offset_hours(r.zone, at, offsets) for r in mentors],
                                np.float64),
        mentor_active=np.array([r.active for r in mentors], np.int64),
        mentor_max=np.array([r.mentor_max_mentees for r in mentors], np.int64),
    )


# Assignments and their `assignment.created` events in one statement: the events are made
# from the rows really inserted (a mentee assigned meanwhile by a director is skipped by the
# partial unique index and gets no event), with the outbox's shared set-based emitter.
_INSERT_ASSIGNMENTS = text(f"""
with inserted as (
    insert into assignments (id, mentee_id, mentor_id, source, score, reasons, started_at)
    select t.id, t.mentee_id, t.mentor_id, 'auto', t.score,
           string_to_array(t.reasons, chr({ord(REASON_SEPARATOR)})), :now
      from unnest(cast(:ids as uuid[]), cast(:mentee_ids as uuid[]),
                  cast(:mentor_ids as uuid[]), cast(:scores as float8[]),
                  cast(:reasons as text[])) as t(id, mentee_id, mentor_id, score, reasons)
        on conflict (mentee_id) where ended_at is null do nothing
    returning id, mentee_id, mentor_id, score, reasons, started_at
),
events as (
    {insert_events_sql(
        type="assignment.created",
        data=f'''jsonb_build_object(
            'assignment_id', i.id, 'mentee_id', i.mentee_id, 'mentor_id', i.mentor_id,
            'source', 'auto', 'score', i.score, 'reasons', to_jsonb(i.reasons),
            'previous_mentor_id', null, 'started_at', {sql_rfc3339("i.started_at")})''',
        recipients="array[i.mentee_id, i.mentor_id]",
        source="inserted i",
    )}
)
select mentee_id from inserted
""")

_OVER_CAPACITY = text("""
    select a.mentor_id
      from assignments a join users u on u.id = a.mentor_id
     where a.ended_at is null and a.mentor_id = any(:mentor_ids)
     group by a.mentor_id, u.mentor_max_mentees
    having count(*) > u.mentor_max_mentees
""").bindparams(bindparam("mentor_ids", type_=_ID_LIST))


async def auto_match(session: AsyncSession, *, settings: Settings, at: datetime,
                     mentee_ids: list[uuid.UUID] | None = None,
                     mentor_ids: list[uuid.UUID] | None = None) -> MatchOutcome:
    """One matcher pass in the caller's transaction (which must hold the matcher lock).
    Writes the assignments (source `auto`, score, reasons) and their `assignment.created`
    events; never touches active assignments."""
    outcome = MatchOutcome()
    started = time.perf_counter()
    problem = await load_problem(session, at=at, mentee_ids=mentee_ids, mentor_ids=mentor_ids)
    outcome.load_ms = _ms_since(started)
    outcome.mentees_considered = len(problem.mentee_ids)
    outcome.mentors_with_places = int((problem.remaining > 0).sum())

    def solve() -> tuple[FitModel, Matching]:
        model = FitModel(problem, Weights.from_settings(settings))
        return model, solve_optimal(model, top_k=settings.match_top_k,
                                    block_rows=settings.match_block_rows)

    # CPU-bound: off the event loop so the worker keeps its heartbeat and other jobs.
    model, matching = await asyncio.to_thread(solve)
    outcome.candidates_ms = round(matching.candidates_ms)
    outcome.solver_ms = round(matching.solver_ms)
    outcome.hub_mentees = matching.hub_mentees

    started = time.perf_counter()
    placed = np.flatnonzero(matching.mentor_of >= 0)
    mentors_of_placed = matching.mentor_of[placed]
    placed_mentees = [problem.mentee_ids[e] for e in placed.tolist()]
    placed_mentors = [problem.mentor_ids[m] for m in mentors_of_placed.tolist()]
    scores = (matching.fit[placed] / SCALE).tolist()
    inserted: set[uuid.UUID] = set()
    if len(placed):
        reasons = model.reasons(placed, mentors_of_placed)
        result = await session.execute(_INSERT_ASSIGNMENTS, {
            "now": at,
            "ids": [uuid.uuid4() for _ in placed_mentees],
            "mentee_ids": placed_mentees,
            "mentor_ids": placed_mentors,
            "scores": scores,
            "reasons": [REASON_SEPARATOR.join(r) for r in reasons],
        })
        inserted = set(result.scalars())
    if inserted:
        touched = list({m for e, m in zip(placed_mentees, placed_mentors, strict=True)
                        if e in inserted})
        over = (await session.scalars(_OVER_CAPACITY, {"mentor_ids": touched})).all()
        if over:  # only if manual assignment skipped the mentor lock: refuse to commit
            raise RuntimeError(f"matching would exceed mentor_max_mentees for {over[:5]}")
    outcome.write_ms = _ms_since(started)

    outcome.assigned = len(inserted)
    outcome.total_fit = round(sum(score for mentee, score in zip(placed_mentees, scores,
                                                                 strict=True)
                                  if mentee in inserted), 3)
    out_reason = NO_CAPACITY if outcome.mentors_with_places else NO_CANDIDATE
    for e in np.flatnonzero(matching.mentor_of < 0).tolist():
        outcome.unplaced[str(problem.mentee_ids[e])] = out_reason
    for mentee in placed_mentees:
        if mentee not in inserted:
            outcome.unplaced[str(mentee)] = ASSIGNED_CONCURRENTLY
    return outcome


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


# --- runs: requested by a director (app/services/matching/runs.py), executed here ------

def _summary(run: MatchingRun) -> dict[str, Any]:
    return {
        "job_id": run.job_id, "status": run.status, "assigned": run.assigned_count,
        "unplaced": run.unplaced_count, "total_fit": run.total_fit,
        "duration_ms": run.duration_ms, "solver_ms": run.solver_ms, "error": run.error,
    }


async def execute_matching_run(
    database: Database, *, settings: Settings, job_id: str,
    requested_by: uuid.UUID | None = None,
    mentee_ids: list[uuid.UUID] | None = None, mentor_ids: list[uuid.UUID] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run the matcher for `job_id` on the workers' engine (acting as the system) and record
    the result on the run's row. Safe to run again for the same job: a finished run is not
    repeated, and an interrupted one left nothing behind and starts over."""
    started = time.perf_counter()
    at = now or datetime.now(UTC)
    async with database.transaction(None) as session:  # visible as `running` at once
        claimed = await session.scalar(
            pg_insert(MatchingRun)
            .values(id=uuid.uuid4(), job_id=job_id, status="running",
                    requested_by=requested_by, started_at=datetime.now(UTC))
            .on_conflict_do_update(
                index_elements=["job_id"],
                set_={"status": "running", "started_at": datetime.now(UTC)},
                where=MatchingRun.status.in_(("queued", "running")),
            )
            .returning(MatchingRun.id)
        )
        if claimed is None:  # already finished (the job was delivered again): report it
            return _summary(await get_matching_run(session, job_id=job_id))

    timeout_ms = int(settings.match_lock_timeout_seconds * 1000)
    locked = False
    try:
        async with database.transaction(None) as session:
            # Also bounds the waits for mentor rows and for a director's concurrent insert.
            await session.execute(text("select set_config('lock_timeout', :ms, true)"),
                                  {"ms": str(timeout_ms)})
            await session.execute(text("select pg_advisory_xact_lock(:key)"),
                                  {"key": MATCHER_LOCK_KEY})
            locked = True
            outcome = await auto_match(session, settings=settings, at=at,
                                       mentee_ids=mentee_ids, mentor_ids=mentor_ids)
            await session.execute(
                update(MatchingRun).where(MatchingRun.job_id == job_id).values(
                    status="done", finished_at=datetime.now(UTC),
                    assigned_count=outcome.assigned, unplaced_count=len(outcome.unplaced),
                    total_fit=outcome.total_fit, unplaced=outcome.unplaced,
                    solver_ms=outcome.solver_ms, duration_ms=_ms_since(started),
                )
            )
    except DBAPIError as exc:
        if locked or _sqlstate(exc) != "55P03":  # 55P03: lock_not_available
            await _finish(database, job_id, "failed", started, f"{type(exc).__name__}: {exc}")
            raise
        waited = f"{settings.match_lock_timeout_seconds:g} s"
        await _finish(database, job_id, "skipped", started,
                      f"another run held the matcher lock for {waited}")
        log.info("matching_run_skipped", job_id=job_id)
    except Exception as exc:
        await _finish(database, job_id, "failed", started, f"{type(exc).__name__}: {exc}")
        raise
    else:
        log.info("matching_run_done", job_id=job_id, assigned=outcome.assigned,
                 unplaced=len(outcome.unplaced), total_fit=outcome.total_fit,
                 solver_ms=outcome.solver_ms, load_ms=outcome.load_ms,
                 candidates_ms=outcome.candidates_ms, write_ms=outcome.write_ms)
    async with database.transaction(None) as session:
        return _summary(await get_matching_run(session, job_id=job_id))


async def _finish(database: Database, job_id: str, status: str, started: float,
                  error: str) -> None:
    async with database.transaction(None) as session:
        await session.execute(
            update(MatchingRun).where(MatchingRun.job_id == job_id).values(
                status=status, finished_at=datetime.now(UTC), error=error[:2000],
                duration_ms=_ms_since(started),
            )
        )


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = getattr(exc, "orig", None)
    cause = getattr(orig, "__cause__", None) or orig
    return getattr(cause, "sqlstate", None)
