"""The auto-matcher: places every unassigned mentee that can be placed, maximising total fit.

The model is an optimal capacitated assignment solved as a min-cost flow (OR-Tools):

    mentee (supply 1) ──fit arc──▶ mentor ──cap = free places──▶ sink (demand = mentees)
          │                            ▲
          ├──▶ hub ─── cap = places ───┘     catch-all route (only when top-K is partial)
          └──▶ unplaced ── cap = mentees - min(mentees, places) ──▶ sink

* Placement comes first by construction, not by a large bonus: the "unplaced" node can
  absorb only `mentees - most` units, so every feasible flow places exactly `most`
  mentees, the most anyone can place (`min(mentees, places)` when no limit bites). Among
  those flows the solver maximises the total fit (costs = -fit x 1000: integers).
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

Fit: the weighted terms and the preference boost of `app/services/matching/fit.py` (rules
in `app/config.py`, the `match_*` settings). A mentee's `max_timezone_offset_hours` is a
hard limit: such pairs are no arcs at all. Placement still comes first: a max flow over
groups of mentees with the same allowed mentors gives the most mentees that can be placed,
and that is the flow the solver must carry (the "unplaced" node takes the rest). The
catch-all route is one hub per such group, linked only to the mentors the group allows.

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
transaction: a worker killed mid-run leaves nothing behind, and the retried job starts over
(app/services/matching/execution.py: leases, retries, `matching.run_finished`).

A dry run reads the same data with the same solver but locks nothing and writes only its
proposals (each pair's fit, weighted terms and reasons); publishing them later
(app/services/matching/publish.py) takes the locks and re-checks every proposal.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.services.matching.explain import COMPONENTS, explain
from app.services.matching.fit import (
    NO_LIMIT,
    SCALE,
    FitModel,
    MatchProblem,
    normalize_languages,
    normalize_tags,
)
from app.services.matching.solver import Matching, solve_optimal
from app.services.matching.weights import Weights
from app.services.matching.writes import ID_LIST, insert_assignments, insert_proposals
from app.services.matching.zones import offsets
from app.services.mentors.capacity import MENTOR_ZONE_SQL

# Why a mentee was not placed.
NO_CANDIDATE = "no_candidate"  # no mentor had a free place at the start of the run
NO_CAPACITY = "no_capacity"  # fewer places than mentees: the places went to better fits
ASSIGNED_CONCURRENTLY = "assigned_concurrently"  # a director assigned them during the run
# The mentee's own limit shut out places others could use (no mentor with a free place
# within it, or those few went to others).
TIMEZONE_LIMIT = "max_timezone_offset_hours"


@dataclass
class MatchOutcome:
    assigned: int = 0  # assignments written (a dry run: proposals written)
    total_fit: float = 0.0
    unplaced: dict[str, str] = field(default_factory=dict)  # mentee id -> reason
    mentees_considered: int = 0
    mentors_with_places: int = 0
    hub_mentees: int = 0
    load_ms: int = 0
    candidates_ms: int = 0
    solver_ms: int = 0
    write_ms: int = 0


async def load_problem(session: AsyncSession, *, at: datetime,
                       mentee_ids: list[uuid.UUID] | None = None,
                       mentor_ids: list[uuid.UUID] | None = None,
                       lock: bool = True) -> MatchProblem:
    """Unassigned mentees (with their preferences) and every mentor, optionally limited to
    the given ids (a cohort), after locking them when `lock` (see the module doc). A mentee
    who is also a mentor is left out (never matched with themselves)."""
    mentee_filter = " and u.id = any(:mentee_ids)" if mentee_ids is not None else ""
    mentor_filter = " and u.id = any(:mentor_ids)" if mentor_ids is not None else ""
    params: dict[str, Any] = {}
    binds = []
    if mentee_ids is not None:
        params["mentee_ids"] = mentee_ids
        binds.append(bindparam("mentee_ids", type_=ID_LIST))
    if mentor_ids is not None:
        params["mentor_ids"] = mentor_ids
        binds.append(bindparam("mentor_ids", type_=ID_LIST))
    unassigned = ("not exists (select 1 from assignments a"
                  " where a.mentee_id = u.id and a.ended_at is null)")
    # 1. Lock the mentors and the waiting mentees, in id order like a director's assignment
    #    (mentee and mentor rows, in id order): the two queue up, never deadlock.
    #    Deactivated users are neither matched nor locked. A dry run writes nothing and
    #    locks nothing.
    if lock:
        people = list(await session.scalars(text(f"""
            select u.id from users u
             where u.active and ((u.is_mentor{mentor_filter})
                or (u.role = 'mentee' and not u.is_mentor{mentee_filter} and {unassigned}))
             order by u.id
               for no key update of u
        """).bindparams(*binds), params))
        # 2. Read them with a snapshot taken after the locks: no assignment to these mentors
        #    or of these mentees can commit any more before this run does, so the counts hold.
        mentor_where = mentee_where = "u.id = any(:people)"
        params = {"people": people}
        mentor_binds = mentee_binds = [bindparam("people", type_=ID_LIST)]
    else:  # the same people, read directly (no id list to send back and forth)
        mentor_where, mentee_where = f"u.active{mentor_filter}", f"u.active{mentee_filter}"
        mentor_binds = [b for b in binds if b.key == "mentor_ids"]
        mentee_binds = [b for b in binds if b.key == "mentee_ids"]
    mentors = (await session.execute(text(f"""
        select u.id, u.mentor_specialties, {MENTOR_ZONE_SQL} as zone, u.mentor_max_mentees,
               u.languages,
               (select count(*) from assignments a
                 where a.mentor_id = u.id and a.ended_at is null) as active
          from users u
         where u.is_mentor and {mentor_where}
         order by u.id
    """).bindparams(*mentor_binds), params)).all()
    mentees = (await session.execute(text(f"""
        select u.id, u.interests, u.timezone, u.languages, p.specialties,
               p.languages as wanted_languages, p.max_timezone_offset_hours as max_offset,
               p.preferred_mentor_ids
          from users u left join mentee_preferences p on p.mentee_id = u.id
         where u.role = 'mentee' and not u.is_mentor and {mentee_where} and {unassigned}
         order by u.id
    """).bindparams(*mentee_binds), params)).all()
    mentor_index = {r.id: i for i, r in enumerate(mentors)}
    return MatchProblem(
        mentee_ids=[r.id for r in mentees],
        mentee_tags=[normalize_tags(r.interests) for r in mentees],
        mentee_offsets=np.array([offsets(r.timezone, at) for r in mentees],
                                np.float64).reshape(-1, 2),
        mentor_ids=[r.id for r in mentors],
        mentor_tags=[normalize_tags(r.mentor_specialties) for r in mentors],
        mentor_offsets=np.array([offsets(r.zone, at) for r in mentors],
                                np.float64).reshape(-1, 2),
        mentor_active=np.array([r.active for r in mentors], np.int64),
        mentor_max=np.array([r.mentor_max_mentees for r in mentors], np.int64),
        mentee_languages=[normalize_languages(r.wanted_languages or r.languages)
                          for r in mentees],
        mentor_languages=[normalize_languages(r.languages) for r in mentors],
        mentee_limits=np.array([NO_LIMIT if r.max_offset is None else r.max_offset
                                for r in mentees], np.float64),
        mentee_preferred_tags=[normalize_tags(r.specialties) for r in mentees],
        mentee_preferred_mentors=[
            sorted({mentor_index[m] for m in (r.preferred_mentor_ids or ())
                    if m in mentor_index and m != r.id})
            for r in mentees],
    )


def _unplaced(model: FitModel, matching: Matching) -> dict[str, str]:
    problem = model.problem
    out = np.flatnonzero(matching.mentor_of < 0)
    if not len(out):
        return {}
    cols = np.flatnonzero(problem.remaining > 0)
    places = problem.remaining[cols]
    group, allowed = model.limit_groups(cols)
    within = (allowed * places[None, :]).sum(axis=1)  # places each group may take
    base = NO_CAPACITY if len(cols) else NO_CANDIDATE
    return {
        str(problem.mentee_ids[e]): TIMEZONE_LIMIT if within[group[e]] < places.sum() else base
        for e in out.tolist()
    }


async def auto_match(session: AsyncSession, *, settings: Settings, at: datetime,
                     weights: Weights | None = None, dry_run: bool = False,
                     run_id: uuid.UUID | None = None,
                     mentee_ids: list[uuid.UUID] | None = None,
                     mentor_ids: list[uuid.UUID] | None = None) -> MatchOutcome:
    """One matcher pass in the caller's transaction. A run (which must hold the matcher
    lock) writes the assignments (source `auto`, score, reasons) and their
    `assignment.created` events, never touching active assignments; a dry run writes only
    the proposals of `run_id`."""
    outcome = MatchOutcome()
    started = time.perf_counter()
    problem = await load_problem(session, at=at, mentee_ids=mentee_ids, mentor_ids=mentor_ids,
                                 lock=not dry_run)
    outcome.load_ms = _ms_since(started)
    outcome.mentees_considered = len(problem.mentee_ids)
    outcome.mentors_with_places = int((problem.remaining > 0).sum())
    chosen = weights or Weights.from_settings(settings)

    def solve() -> tuple[FitModel, Matching]:
        model = FitModel(problem, chosen, settings.match_preference_boost)
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
    explained = await asyncio.to_thread(explain, model, placed, mentors_of_placed)
    outcome.unplaced = _unplaced(model, matching)
    if dry_run:
        assert run_id is not None
        await insert_proposals(
            session, run_id=run_id, mentee_ids=placed_mentees, mentor_ids=placed_mentors,
            fits=scores, reasons=explained.reasons,
            components={k: np.round(explained.components[k], 4).tolist() for k in COMPONENTS},
        )
        inserted = set(placed_mentees)
    else:
        inserted = await insert_assignments(
            session, at=at, mentee_ids=placed_mentees, mentor_ids=placed_mentors,
            scores=scores, reasons=explained.reasons)
    outcome.write_ms = _ms_since(started)
    outcome.assigned = len(inserted)
    outcome.total_fit = round(sum(score for mentee, score in zip(placed_mentees, scores,
                                                                 strict=True)
                                  if mentee in inserted), 3)
    for mentee in placed_mentees:
        if mentee not in inserted:
            outcome.unplaced[str(mentee)] = ASSIGNED_CONCURRENTLY
    return outcome


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
