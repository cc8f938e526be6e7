"""The auto-matcher against the real database: placements, capacity, stored score and
reasons, events, idempotence, and runs racing each other or a director."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.config import Settings
from app.core.db import Database
from app.models import Assignment, MatchingRun, OutboxEvent, User
from app.services.matching.engine import ASSIGNED_CONCURRENTLY, NO_CANDIDATE, NO_CAPACITY
from app.services.matching.execution import execute_matching_run
from app.services.matching.writes import MATCHER_LOCK_KEY
from app.services.relationships.assignments import assign_mentee
from tests.support.events_helpers import director_ids
from tests.support.factories import ALWAYS_AVAILABLE, Factory
from tests.support.worker_helpers import advisory_locks, lock_waiters, wait_until


def job_id() -> str:
    return f"match-test-{uuid.uuid4()}"


async def run(system_db: Database, settings: Settings, mentees: list[User],
              mentors: list[User], **kw: Any) -> dict[str, Any]:
    """A run scoped to these users (other tests' users are left alone)."""
    return await execute_matching_run(
        system_db, settings=settings, job_id=kw.pop("job_id", None) or job_id(),
        mentee_ids=[m.id for m in mentees], mentor_ids=[m.id for m in mentors], **kw,
    )


async def active_assignments(system_db: Database, users: list[User]) -> list[Assignment]:
    ids = [u.id for u in users]
    async with system_db.transaction(None) as session:
        return list(await session.scalars(
            select(Assignment).where(Assignment.ended_at.is_(None),
                                     Assignment.mentee_id.in_(ids))
        ))


async def events_for(system_db: Database, assignment_ids: list[uuid.UUID]) -> list[OutboxEvent]:
    async with system_db.transaction(None) as session:
        return list(await session.scalars(
            select(OutboxEvent).where(
                OutboxEvent.type == "assignment.created",
                OutboxEvent.data["assignment_id"].astext.in_([str(i) for i in assignment_ids]),
            )
        ))


def zone(name: str) -> dict[str, Any]:
    """A mentor's time zone is their availability's (see app/services/mentors/capacity.py)."""
    return {"timezone": name, "mentor_availability": {**ALWAYS_AVAILABLE, "timezone": name}}


@pytest.fixture
async def programme(factory: Factory):
    """Three mentors (one full), seven mentees (one already assigned): 5 free places for
    6 unassigned mentees."""
    python = await factory.mentor(mentor_specialties=["Python"], mentor_max_mentees=2,
                                  **zone("Europe/London"))
    design = await factory.mentor(mentor_specialties=["design"], mentor_max_mentees=1)
    data = await factory.mentor(mentor_specialties=["data", "python"], mentor_max_mentees=3,
                                **zone("Asia/Tokyo"))
    assigned = await factory.mentee(interests=["design"])
    manual = await factory.assign(design, assigned)
    mentees = [
        await factory.mentee(interests=["python"], timezone="Europe/Paris"),
        await factory.mentee(interests=["python", "data"], timezone="Asia/Seoul"),
        await factory.mentee(interests=["data"], timezone="Asia/Tokyo"),
        await factory.mentee(interests=["design"], timezone="America/New_York"),
        await factory.mentee(interests=[], timezone="UTC"),
        await factory.mentee(interests=["python"], timezone="Europe/London"),
    ]
    return {"mentors": [python, design, data], "mentees": mentees, "assigned": assigned,
            "manual": manual}


class TestAutoMatch:
    async def test_places_every_placeable_mentee_within_capacity(
        self, system_db: Database, settings: Settings, programme: dict[str, Any]
    ) -> None:
        mentors, mentees = programme["mentors"], programme["mentees"]
        result = await run(system_db, settings, mentees + [programme["assigned"]], mentors)

        assert result["status"] == "done"
        assert result["assigned"] == 5 and result["unplaced"] == 1
        rows = await active_assignments(system_db, mentees + [programme["assigned"]])
        per_mentor: dict[uuid.UUID, int] = {}
        for row in rows:
            per_mentor[row.mentor_id] = per_mentor.get(row.mentor_id, 0) + 1
        assert per_mentor == {mentors[0].id: 2, mentors[1].id: 1, mentors[2].id: 3}
        # The active manual assignment is untouched.
        manual = next(r for r in rows if r.mentee_id == programme["assigned"].id)
        assert (manual.id, manual.source, manual.mentor_id) == (
            programme["manual"].id, "manual", mentors[1].id)
        # The one left out is reported with its reason.
        async with system_db.transaction(None) as session:
            stored = await session.scalar(
                select(MatchingRun).where(MatchingRun.job_id == result["job_id"]))
        placed = {r.mentee_id for r in rows}
        (left_out,) = [m for m in mentees if m.id not in placed]
        assert stored.unplaced == {str(left_out.id): NO_CAPACITY}
        assert stored.solver_ms is not None and stored.duration_ms is not None

    async def test_assignments_store_score_reasons_and_emit_events(
        self, system_db: Database, settings: Settings, programme: dict[str, Any]
    ) -> None:
        mentors, mentees = programme["mentors"], programme["mentees"]
        result = await run(system_db, settings, mentees, mentors)
        auto = [r for r in await active_assignments(system_db, mentees) if r.source == "auto"]
        assert len(auto) == 5
        for row in auto:
            assert 0 <= row.score <= 1
            assert any(r.startswith("timezone: ") for r in row.reasons)
            assert any(r.startswith("load: ") for r in row.reasons)
        assert result["total_fit"] == pytest.approx(sum(r.score for r in auto), abs=1e-6)
        # Specialty reasons name the shared tags (case-insensitive).
        tokyo = next(r for r in auto if r.mentee_id == mentees[2].id)
        assert tokyo.mentor_id == programme["mentors"][2].id
        assert tokyo.reasons == ["specialty: data", "timezone: 0 h apart", "load: 0 of 3 mentees"]

        events = await events_for(system_db, [r.id for r in auto])
        assert len(events) == 5
        by_assignment = {e.data["assignment_id"]: e for e in events}
        directors = await director_ids(system_db)
        for row in auto:
            event = by_assignment[str(row.id)]
            assert set(event.recipients) == {row.mentee_id, row.mentor_id} | directors
            assert event.refresh_priority == "high"
            assert event.data["mentor_id"] == str(row.mentor_id)
            assert event.data["source"] == "auto" and event.data["reasons"] == row.reasons
            # The same fields as a director's assignment
            # (app/services/relationships/assignments.py).
            assert set(event.data) == {"assignment_id", "mentee_id", "mentor_id", "source",
                                       "score", "reasons", "previous_mentor_id", "started_at"}

    async def test_second_run_assigns_nothing_new(
        self, system_db: Database, settings: Settings, programme: dict[str, Any]
    ) -> None:
        mentors, mentees = programme["mentors"], programme["mentees"]
        await run(system_db, settings, mentees, mentors)
        before = {r.id for r in await active_assignments(system_db, mentees)}
        again = await run(system_db, settings, mentees, mentors)
        assert again["status"] == "done" and again["assigned"] == 0
        assert {r.id for r in await active_assignments(system_db, mentees)} == before
        assert again["unplaced"] == 1  # still no place for the sixth

    async def test_no_mentor_with_a_place_is_no_candidate(
        self, system_db: Database, settings: Settings, factory: Factory
    ) -> None:
        full = await factory.mentor(mentor_max_mentees=0)
        mentee = await factory.mentee(interests=["python"])
        result = await run(system_db, settings, [mentee], [full])
        async with system_db.transaction(None) as session:
            stored = await session.scalar(
                select(MatchingRun).where(MatchingRun.job_id == result["job_id"]))
        assert stored.unplaced == {str(mentee.id): NO_CANDIDATE}

    async def test_a_mentee_who_is_also_a_mentor_is_never_matched_with_themselves(
        self, system_db: Database, settings: Settings, factory: Factory
    ) -> None:
        both = await factory.user("mentee", is_mentor=True, mentor_max_mentees=5)
        result = await run(system_db, settings, [both], [both])
        assert (result["status"], result["assigned"]) == ("done", 0)
        assert await active_assignments(system_db, [both]) == []

    async def test_deactivated_users_are_never_matched(
        self, system_db: Database, settings: Settings, factory: Factory
    ) -> None:
        gone_mentor = await factory.mentor(active=False, mentor_specialties=["python"])
        mentor = await factory.mentor(mentor_specialties=["python"])
        gone_mentee = await factory.mentee(active=False, interests=["python"])
        mentee = await factory.mentee(interests=["python"])
        result = await run(system_db, settings, [gone_mentee, mentee], [gone_mentor, mentor])
        assert (result["status"], result["assigned"]) == ("done", 1)
        [row] = await active_assignments(system_db, [gone_mentee, mentee])
        assert (row.mentee_id, row.mentor_id) == (mentee.id, mentor.id)

    async def test_a_finished_job_delivered_again_is_not_run_again(
        self, system_db: Database, settings: Settings, programme: dict[str, Any]
    ) -> None:
        mentors, mentees = programme["mentors"], programme["mentees"]
        same = job_id()
        first = await run(system_db, settings, mentees, mentors, job_id=same)
        # Free a place: a real second run would fill it; a repeated delivery must not.
        async with system_db.transaction(None) as session:
            await session.execute(text(
                "update assignments set ended_at = now() where mentor_id = :m "
                "and ended_at is null and source = 'auto'"), {"m": mentors[0].id})
        repeat = await run(system_db, settings, mentees, mentors, job_id=same)
        assert repeat == first
        async with system_db.transaction(None) as session:
            runs = await session.scalar(
                select(func.count()).select_from(MatchingRun).where(MatchingRun.job_id == same))
        assert runs == 1


class TestConcurrency:
    async def test_two_runs_at_once_one_waits_for_the_other(
        self, system_db: Database, settings: Settings, programme: dict[str, Any]
    ) -> None:
        mentors, mentees = programme["mentors"], programme["mentees"]
        # Hold one mentor row so the first run stops inside its transaction, lock held.
        async with system_db.sessions() as blocker, blocker.begin():
            await blocker.execute(select(User.id).where(User.id == mentors[0].id)
                                  .with_for_update())
            first = asyncio.create_task(run(system_db, settings, mentees, mentors))
            await wait_until(lambda: advisory_locks(system_db, granted=True),
                             message="the first run holds the matcher lock")
            second = asyncio.create_task(run(system_db, settings, mentees, mentors))
            await wait_until(lambda: advisory_locks(system_db, granted=False),
                             message="the second run waits for the lock")
            assert not first.done() and not second.done()
        one, two = await asyncio.gather(first, second)

        assert (one["status"], one["assigned"]) == ("done", 5)
        assert (two["status"], two["assigned"]) == ("done", 0)
        rows = await active_assignments(system_db, mentees)
        assert len(rows) == len({r.mentee_id for r in rows}) == 5

    async def test_a_run_that_waits_too_long_is_skipped(
        self, system_db: Database, settings: Settings, programme: dict[str, Any]
    ) -> None:
        impatient = settings.model_copy(update={"match_lock_timeout_seconds": 0.3})
        async with system_db.sessions() as holder, holder.begin():
            await holder.execute(text("select pg_advisory_xact_lock(:k)"),
                                 {"k": MATCHER_LOCK_KEY})
            result = await run(system_db, impatient, programme["mentees"],
                               programme["mentors"])
        assert result["status"] == "skipped"
        assert "lock" in result["error"]
        assert await active_assignments(system_db, programme["mentees"]) == []

    async def test_mentee_assigned_by_a_director_during_the_run_is_skipped(
        self, system_db: Database, settings: Settings, factory: Factory,
        programme: dict[str, Any],
    ) -> None:
        mentors, mentees = programme["mentors"], programme["mentees"]
        elsewhere = await factory.mentor()
        target = mentees[0]
        async with system_db.sessions() as director, director.begin():
            director.add(Assignment(mentee_id=target.id, mentor_id=elsewhere.id))
            await director.flush()  # inserted, not committed: the run cannot see it
            task = asyncio.create_task(run(system_db, settings, mentees, mentors))
            await wait_until(lambda: lock_waiters(system_db, "transactionid"),
                             message="the run's insert waits for the director's")
        result = await task

        assert result["status"] == "done" and result["assigned"] == 4
        rows = await active_assignments(system_db, [target])
        assert [(r.mentor_id, r.source) for r in rows] == [(elsewhere.id, "manual")]
        async with system_db.transaction(None) as session:
            stored = await session.scalar(
                select(MatchingRun).where(MatchingRun.job_id == result["job_id"]))
        assert stored.unplaced[str(target.id)] == ASSIGNED_CONCURRENTLY

    async def test_a_directors_assignment_during_the_run_is_counted(
        self, system_db: Database, settings: Settings, factory: Factory
    ) -> None:
        """The director's protocol (lock mentee and mentor rows, in id order) and the run's
        queue up: the run counts the director's assignment, so the mentor stays within
        their maximum and the run does not fail."""
        tight = await factory.mentor(mentor_max_mentees=2)
        other = await factory.mentor(mentor_max_mentees=1)
        mentees = [await factory.mentee() for _ in range(4)]
        async with system_db.sessions() as director, director.begin():
            await assign_mentee(director, principal=None, mentee_id=mentees[0].id,
                                mentor_id=tight.id)
            task = asyncio.create_task(run(system_db, settings, mentees, [tight, other]))
            await wait_until(lambda: lock_waiters(system_db, "transactionid"),
                             message="the run to wait for the director's locks")
        result = await task

        assert (result["status"], result["assigned"], result["unplaced"]) == ("done", 2, 1)
        rows = await active_assignments(system_db, mentees)
        assert sorted((r.mentor_id == tight.id, r.source) for r in rows) == [
            (False, "auto"), (True, "auto"), (True, "manual")]
