"""Director routes: manual assignments (with the capacity race) and every mentor's load."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select

from app.core.sql import DriverQuery
from app.models import Assignment
from app.services.mentors.capacity import iso_week_bounds
from tests.support.events_helpers import director_ids
from tests.support.workspace_support import outbox_events, work_item

ASSIGN = "/api/v1/director/assignments"
MENTORS = "/api/v1/director/mentors"


@pytest.fixture
async def director(factory):
    return factory.headers(await factory.user("director"))


async def _active(system_db, **where) -> list[Assignment]:
    async with system_db.transaction(None) as session:
        return list(await session.scalars(select(Assignment).where(
            Assignment.ended_at.is_(None),
            *(getattr(Assignment, k) == v for k, v in where.items()))))


def _body(mentee, mentor) -> dict[str, str]:
    return {"mentee_id": str(mentee.id), "mentor_id": str(mentor.id)}


class TestAssign:
    async def test_assign_unassigned_mentee(self, client, factory, system_db, director):
        mentor, mentee = await factory.mentor(), await factory.mentee()
        response = await client.post(ASSIGN, headers=director, json=_body(mentee, mentor))
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["mentor_id"], body["mentee_id"], body["source"], body["created"]) == (
            str(mentor.id), str(mentee.id), "manual", True)
        assert body["previous_mentor_id"] is None
        [row] = await _active(system_db, mentee_id=mentee.id)
        assert row.mentor_id == mentor.id and row.assigned_by is not None
        [created] = await outbox_events(system_db, type="assignment.created",
                                        mentee_id=mentee.id)
        assert created.refresh_priority == "high"
        assert set(created.recipients) == {mentor.id, mentee.id} | await director_ids(system_db)
        assert await outbox_events(system_db, type="assignment.ended", mentee_id=mentee.id) == []

    async def test_reassign_ends_the_old_assignment(self, client, factory, system_db, director):
        old, (mentee,) = await factory.mentor_with_mentees(1)
        new = await factory.mentor()
        response = await client.post(ASSIGN, headers=director, json=_body(mentee, new))
        assert response.status_code == 201, response.text
        assert response.json()["previous_mentor_id"] == str(old.id)
        async with system_db.transaction(None) as session:
            rows = list(await session.scalars(select(Assignment).where(
                Assignment.mentee_id == mentee.id).order_by(Assignment.started_at)))
        assert [(r.mentor_id, r.end_reason) for r in rows] == [(old.id, "reassigned"),
                                                                (new.id, None)]
        assert rows[0].ended_at is not None and rows[1].ended_at is None
        [ended] = await outbox_events(system_db, type="assignment.ended", mentee_id=mentee.id)
        assert set(ended.recipients) == {old.id, mentee.id} | await director_ids(system_db)
        assert ended.data["end_reason"] == "reassigned"
        assert ended.data["replaced_by"] == response.json()["id"]
        [created] = await outbox_events(system_db, type="assignment.created",
                                        mentee_id=mentee.id)
        assert set(created.recipients) == {new.id, mentee.id} | await director_ids(system_db)

    async def test_same_mentor_again_is_idempotent_200(self, client, factory, system_db,
                                                       director):
        mentor, mentee = await factory.mentor(), await factory.mentee()
        first = await client.post(ASSIGN, headers=director, json=_body(mentee, mentor))
        again = await client.post(ASSIGN, headers=director, json=_body(mentee, mentor))
        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json()["id"] == first.json()["id"] and again.json()["created"] is False
        assert len(await outbox_events(system_db, type="assignment.created",
                                       mentee_id=mentee.id)) == 1

    async def test_full_mentor_is_409_and_nothing_changes(self, client, factory, system_db,
                                                          director):
        full, _ = await factory.mentor_with_mentees(2, mentor_max_mentees=2)
        old, (mentee,) = await factory.mentor_with_mentees(1)
        response = await client.post(ASSIGN, headers=director, json=_body(mentee, full))
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "capacity_exceeded"
        [row] = await _active(system_db, mentee_id=mentee.id)
        assert row.mentor_id == old.id
        assert await outbox_events(system_db, type="assignment.ended", mentee_id=mentee.id) == []

    async def test_not_a_mentor_or_not_a_mentee_is_422(self, client, factory, director):
        plain = await factory.mentee()
        mentee = await factory.mentee()
        not_mentor = await client.post(ASSIGN, headers=director, json=_body(mentee, plain))
        assert not_mentor.status_code == 422 and not_mentor.json()["code"] == "not_a_mentor"
        mentor, other_mentor = await factory.mentor(), await factory.mentor()
        not_mentee = await client.post(ASSIGN, headers=director,
                                       json=_body(other_mentor, mentor))
        assert not_mentee.status_code == 422 and not_mentee.json()["code"] == "not_a_mentee"
        self_ = await client.post(ASSIGN, headers=director, json=_body(mentor, mentor))
        assert self_.status_code == 422

    async def test_unknown_users_are_404(self, client, factory, director):
        mentor, mentee = await factory.mentor(), await factory.mentee()
        ghost = type("Ghost", (), {"id": uuid.uuid4()})
        for body in (_body(ghost, mentor), _body(mentee, ghost)):
            response = await client.post(ASSIGN, headers=director, json=body)
            assert response.status_code == 404, response.text

    @pytest.mark.parametrize("body", [{}, {"mentee_id": "x", "mentor_id": "y"},
                                      {"mentee_id": str(uuid.uuid4())}])
    async def test_bad_body_is_422(self, client, director, body):
        assert (await client.post(ASSIGN, headers=director, json=body)).status_code == 422

    async def test_fifty_concurrent_assignments_for_two_free_places(self, client, factory,
                                                                    system_db, director):
        mentor, _ = await factory.mentor_with_mentees(3, mentor_max_mentees=5)
        mentees = [await factory.mentee() for _ in range(50)]
        responses = await asyncio.gather(*(
            client.post(ASSIGN, headers=director, json=_body(mentee, mentor))
            for mentee in mentees
        ))
        codes = [r.status_code for r in responses]
        assert codes.count(201) == 2, codes
        assert codes.count(409) == 48, codes
        assert {r.json()["code"] for r in responses if r.status_code == 409} == {
            "capacity_exceeded"}
        assert len(await _active(system_db, mentor_id=mentor.id)) == 5
        winners = {r.json()["mentee_id"] for r in responses if r.status_code == 201}
        assert len(await outbox_events(system_db, type="assignment.created",
                                       mentor_id=mentor.id)) == 2
        assert winners <= {str(m.id) for m in mentees}

    async def test_concurrent_reassignments_of_one_mentee_keep_one_active(
            self, client, factory, system_db, director):
        first, (mentee,) = await factory.mentor_with_mentees(1)
        mentors = [await factory.mentor() for _ in range(10)]
        responses = await asyncio.gather(*(
            client.post(ASSIGN, headers=director, json=_body(mentee, m)) for m in mentors))
        assert [r.status_code for r in responses] == [201] * 10
        [active] = await _active(system_db, mentee_id=mentee.id)
        async with system_db.transaction(None) as session:
            ended = await session.scalar(select(func.count()).select_from(Assignment).where(
                Assignment.mentee_id == mentee.id, Assignment.ended_at.is_not(None)))
        assert ended == 10  # the first one and nine of the ten new ones
        assert active.mentor_id in {m.id for m in mentors}


@contextmanager
def count_queries(app):
    """The statements the app sends in the block: through SQLAlchemy, and hot reads run on
    the driver connection (app/core/sql.py's DriverQuery)."""
    statements: list[str] = []

    def on_execute(conn, cursor, statement, *args):
        if "auth_identity" not in statement:  # the token check, cached per process
            statements.append(statement)

    def recording(method):
        async def run(query, session, params):
            statements.append(query.sql)
            return await method(query, session, params)
        return run

    engine = app.state.shared.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        with patch.object(DriverQuery, "fetch", recording(DriverQuery.fetch)), \
                patch.object(DriverQuery, "fetchrow", recording(DriverQuery.fetchrow)):
            yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


async def _walk(client, headers, **params) -> list[dict]:
    items, cursor = [], None
    while True:
        query = {"limit": 200, **params} | ({"cursor": cursor} if cursor else {})
        response = await client.get(MENTORS, headers=headers, params=query)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


class TestMentorLoads:
    async def test_one_mentors_figures(self, client, factory, director):
        mentor, mentees = await factory.mentor_with_mentees(
            2, mentor_max_mentees=4, mentor_capacity_weekly=10, name="Zed Loadcheck")
        week_start, _ = iso_week_bounds(ZoneInfo("UTC"), datetime.now(UTC))
        await factory.session(mentor, mentees[0], starts_at=week_start + timedelta(hours=1))
        await factory.session(mentor, mentees[1], starts_at=week_start + timedelta(hours=3),
                              status="cancelled")
        await work_item(factory, mentees[0])
        await work_item(factory, mentees[1], due_in=-timedelta(hours=1))
        await work_item(factory, mentees[1], status="done")
        [row] = [m for m in await _walk(client, director) if m["mentor_id"] == str(mentor.id)]
        assert (row["mentees"], row["mentees_active"], row["mentees_max"]) == ("2/4", 2, 4)
        assert row["load"] == 0.5
        assert (row["weekly_slots"], row["utilization"]) == ("1/10", 0.1)
        assert (row["open_items"], row["overdue_items"]) == (2, 1)
        assert row["name"] == "Zed Loadcheck"

    @pytest.mark.parametrize("sort", ["name", "-name", "load", "-load"])
    async def test_sorted_walk_lists_every_mentor_once(self, client, factory, director, sort):
        for active, maximum in ((1, 4), (3, 4), (0, 2), (2, 2)):
            await factory.mentor_with_mentees(active, mentor_max_mentees=maximum)
        walked = await _walk(client, director, sort=sort, limit=7)
        assert len({m["mentor_id"] for m in walked}) == len(walked)
        assert {m["mentor_id"] for m in walked} == {
            m["mentor_id"] for m in await _walk(client, director)}
        if sort.endswith("name"):
            keys = [(m["name"], m["mentor_id"]) for m in walked]
        else:
            sign = -1 if sort.startswith("-") else 1
            keys = [(sign * m["load"], m["name"], m["mentor_id"]) for m in walked]
        assert keys == sorted(keys, reverse=(sort == "-name"))

    async def test_constant_number_of_queries_per_page(self, app, client, factory, director):
        for _ in range(12):
            await factory.mentor_with_mentees(2)
        counts = {}
        for limit in (2, 40):
            with count_queries(app) as statements:
                response = await client.get(MENTORS, headers=director,
                                            params={"limit": limit, "sort": "-load"})
            assert len(response.json()["items"]) == limit
            counts[limit] = len(statements)
        assert counts[2] == counts[40], counts

    async def test_cursor_of_another_sort_is_422(self, client, factory, director):
        for _ in range(3):
            await factory.mentor()
        first = await client.get(MENTORS, headers=director, params={"limit": 1})
        response = await client.get(MENTORS, headers=director, params={
            "limit": 1, "sort": "load", "cursor": first.json()["next_cursor"]})
        assert response.status_code == 422 and response.json()["code"] == "invalid_cursor"

    async def test_roles(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        for user in (mentor, mentee):
            response = await client.get(MENTORS, headers=factory.headers(user))
            assert response.status_code == 403
        admin = await factory.user("admin")
        assert (await client.get(MENTORS, headers=factory.headers(admin))).status_code == 200
