"""The waiting list's reasons (`matching_unplaced`, kept by a trigger from each run's
`unplaced` map: migration 0027) and the plans of the directors' hot reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, text, update

from app.core.auth import Principal
from app.core.sql import DriverQuery
from app.models import MatchingRun, MatchingUnplaced
from app.schemas.common import Page
from app.schemas.relationships import WaitingMentee
from app.services.dashboard import mentees
from app.services.relationships import waiting

WAITING = "/api/v1/director/waiting"


@pytest.fixture
async def director(factory):
    return await factory.user("director")


async def _reasons(client, factory, director, *people) -> dict[str, str | None]:
    found, cursor, wanted = {}, None, {str(p.id) for p in people}
    while True:
        response = await client.get(WAITING, headers=factory.headers(director), params={
            "limit": 200, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        found.update({i["mentee_id"]: i["last_match_reason"]
                      for i in response.json()["items"] if i["mentee_id"] in wanted})
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return found


async def _rows(system_db, run_id) -> dict[str, str | None]:
    async with system_db.transaction(None) as session:
        rows = (await session.execute(select(MatchingUnplaced).where(
            MatchingUnplaced.run_id == run_id))).scalars().all()
    return {str(r.mentee_id): r.reason for r in rows}


async def _update(system_db, run_id, **values) -> None:
    async with system_db.transaction(None) as session:
        await session.execute(update(MatchingRun).where(MatchingRun.id == run_id)
                              .values(**values))


async def test_reasons_follow_the_latest_finished_run(client, factory, system_db, director):
    """Whichever path writes a run (inserted done, finished by an update, its map rewritten
    as the erasure scrub does, deleted), the list reads the latest finished run's reasons;
    a run not (yet) done counts for nothing."""
    a, b = await factory.mentee(), await factory.mentee()
    # Later than any run other tests left (the list reads the latest finished one); both
    # runs are deleted at the end, so no later test finds them the latest instead of its own.
    async with system_db.transaction(None) as session:
        latest = await session.scalar(text(
            "select max(finished_at) from matching_runs where status = 'done'"))
    now = max(datetime.now(UTC), (latest or datetime.min.replace(tzinfo=UTC))
              + timedelta(hours=3))
    older, newer = uuid.uuid4(), uuid.uuid4()
    try:
        await _follow_runs(client, factory, system_db, director, a, b, now, older, newer)
    finally:
        async with system_db.transaction(None) as session:
            await session.execute(delete(MatchingRun).where(MatchingRun.id.in_([older, newer])))


async def _follow_runs(client, factory, system_db, director, a, b, now, older, newer) -> None:
    await factory.add(MatchingRun(
        id=older, job_id=f"test-{older}", status="done", finished_at=now - timedelta(hours=2),
        unplaced={str(a.id): "no_capacity", str(b.id): "no_capacity", "not-a-uuid": "x"}))
    await factory.add(MatchingRun(id=newer, job_id=f"test-{newer}", status="running",
                                  unplaced={str(a.id): "ignored"}))
    assert await _rows(system_db, older) == {str(a.id): "no_capacity",
                                             str(b.id): "no_capacity"}
    assert await _rows(system_db, newer) == {}
    assert await _reasons(client, factory, director, a, b) == {
        str(a.id): "no_capacity", str(b.id): "no_capacity"}

    await _update(system_db, newer, status="done", finished_at=now,
                  unplaced={str(a.id): "no_candidate"})
    assert await _reasons(client, factory, director, a, b) == {
        str(a.id): "no_candidate", str(b.id): None}

    await _update(system_db, newer, unplaced={str(b.id): "timezone_limit"})
    assert await _rows(system_db, newer) == {str(b.id): "timezone_limit"}
    assert await _reasons(client, factory, director, a, b) == {
        str(a.id): None, str(b.id): "timezone_limit"}

    await _update(system_db, newer, heartbeat_at=now)  # neither status nor map: unchanged
    assert await _rows(system_db, newer) == {str(b.id): "timezone_limit"}

    async with system_db.transaction(None) as session:
        await session.execute(delete(MatchingRun).where(MatchingRun.id == newer))
    assert await _rows(system_db, newer) == {}
    assert await _reasons(client, factory, director, a, b) == {
        str(a.id): "no_capacity", str(b.id): "no_capacity"}


async def test_pages_are_what_the_model_would_write(client, factory, system_db, director):
    """Postgres writes the page's items (the route does not parse and re-serialise them):
    byte for byte what `Page[WaitingMentee]` writes for the same values, whatever the text
    (quotes, backslashes, control characters, non-ASCII) and the instant (whole seconds or
    not)."""
    odd = [
        await factory.mentee(name='Quote " and \\ back', tier=None,
                             interests=['a "b"', "c\\d", "é", "\x01\t\n"]),
        await factory.mentee(name="Zoë 😀 \x1f\u2028", tier="gold", timezone="Europe/Paris",
                             email="odd+\"x\"@example.test"),
        await factory.mentee(name="Plain", interests=[]),
    ]
    first = datetime(1999, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with system_db.transaction(None) as session:
        for i, (mentee, micro) in enumerate(zip(odd, (0, 5, 120000), strict=True)):
            await session.execute(text(
                "update waiting_mentees set since = :since where mentee_id = :id"),
                {"since": first + timedelta(seconds=i, microseconds=micro), "id": mentee.id})
    run = uuid.uuid4()
    await factory.add(MatchingRun(id=run, job_id=f"test-{run}", status="done",
                                  finished_at=datetime.now(UTC) + timedelta(days=1),
                                  unplaced={str(odd[0].id): 'why "not" \\ é'}))
    try:
        seen, cursor = [], None
        for _ in range(3):
            response = await client.get(WAITING, headers=factory.headers(director), params={
                "limit": 2, **({"cursor": cursor} if cursor else {})})
            assert response.status_code == 200, response.text
            page = Page[WaitingMentee].model_validate_json(response.content)
            assert page.__pydantic_serializer__.to_json(page) == response.content
            seen += page.items
            cursor = page.next_cursor
        by_id = {item.mentee_id: item for item in seen}
        assert [by_id[m.id].name for m in odd] == [m.name for m in odd]
        assert by_id[odd[0].id].interests == odd[0].interests
        assert by_id[odd[0].id].last_match_reason == 'why "not" \\ é'
        assert [by_id[m.id].waiting_since for m in odd] == [
            first, first + timedelta(seconds=1, microseconds=5),
            first + timedelta(seconds=2, microseconds=120000)]
    finally:  # the latest run of the session's database: later tests bring their own
        async with system_db.transaction(None) as session:
            await session.execute(delete(MatchingRun).where(MatchingRun.id == run))


async def _plans(session, query: DriverQuery) -> tuple[int, int]:
    row = (await session.execute(text(
        "select generic_plans, custom_plans from pg_prepared_statements "
        "where statement = :sql"), {"sql": query.sql})).one()
    return row.generic_plans, row.custom_plans


async def test_hot_reads_keep_a_generic_plan(app_db, factory, director):
    """The waiting page and the cockpit are planned once per connection, not at every
    execution (planning the cockpit's inlined, RLS-expanded risk function costs 7-20 ms at
    1K x 20K, executing it 1.5 ms): after Postgres' five custom plans, the generic one is
    kept (plan_cache_mode auto), whatever the parameters."""
    _, people = await factory.mentor_with_mentees(2)
    await factory.mentee(), await factory.mentee()  # a second page at least
    principal = Principal(director.id, "director")
    now = datetime.now(UTC)
    async with app_db.transaction(principal) as session:  # one connection throughout
        _, cursor = await waiting.list_waiting(session, limit=1)
        assert cursor is not None
        for i in range(10):
            await waiting.list_waiting(session, limit=1 + i % 3, cursor=cursor)
            await mentees.director_cockpit(session, mentee_id=people[i % 2].id,
                                           now=now + timedelta(seconds=i))
        for query in (waiting._NEXT_PAGE, mentees._DIRECTOR_COCKPIT):
            generic, custom = await _plans(session, query)
            assert custom <= 5 and generic >= 4, (query.sql[:60], generic, custom)
