"""Real concurrency: many requests at once, each with its own connection and transaction.
The database (exclusion constraints, the mentor row lock) must hold the invariants."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.core.auth import Principal
from app.models import MentoringSession, OutboxEvent
from tests.support.session_helpers import book, week_start


async def live_sessions(factory, mentor) -> int:
    async def run(session):
        return await session.scalar(select(func.count()).select_from(MentoringSession).where(
            MentoringSession.mentor_id == mentor.id, MentoringSession.status != "cancelled"))

    return await factory.run(run)


async def test_fifty_concurrent_bookings_of_one_slot_one_wins(client, factory):
    # Plenty of weekly capacity: every loser must lose on the overlap, not on capacity.
    mentor, mentees = await factory.mentor_with_mentees(50, mentor_capacity_weekly=100)
    headers = factory.headers(mentor)
    starts = week_start() + timedelta(days=2, hours=15)
    responses = await asyncio.gather(*(
        book(client, headers, mentee, starts + timedelta(minutes=i % 3 * 10), 60)
        for i, mentee in enumerate(mentees)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 49}, [r.text for r in responses if r.status_code >= 500]
    codes = Counter(r.json()["code"] for r in responses if r.status_code == 409)
    assert codes == {"double_booking": 49}
    assert await live_sessions(factory, mentor) == 1

    async def scheduled_events(session):
        return await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.type == "session.scheduled",
            OutboxEvent.data["mentor_id"].astext == str(mentor.id)))

    assert await factory.run(scheduled_events) == 1  # losers wrote nothing


async def test_three_free_slots_thirty_concurrent_bookings_three_win(client, factory):
    mentor, mentees = await factory.mentor_with_mentees(30, mentor_capacity_weekly=10)
    monday = week_start(3)
    # 7 of the 10 weekly slots already taken.
    for day in range(7):
        await factory.session(mentor, mentees[day], starts_at=monday + timedelta(days=day,
                                                                                hours=6))
    headers = factory.headers(mentor)
    slots = [monday + timedelta(days=i % 7, hours=8 + i // 7 * 2) for i in range(30)]
    assert len(set(slots)) == 30
    responses = await asyncio.gather(*(
        book(client, headers, mentee, at, 60) for mentee, at in zip(mentees, slots, strict=True)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 3, 409: 27}, [r.text for r in responses if r.status_code >= 500]
    assert {r.json()["code"] for r in responses if r.status_code == 409} \
        == {"capacity_exceeded"}
    assert await live_sessions(factory, mentor) == 10


async def test_mixed_conflicts_never_overlap_nor_exceed_capacity(client, factory, system_db):
    """40 concurrent bookings of overlapping slots for 6 mentees (so mentee and mentor
    overlaps and capacity all compete): afterwards nobody has overlapping live sessions and
    the week holds at most the capacity."""
    mentor, mentees = await factory.mentor_with_mentees(6, mentor_capacity_weekly=4)
    headers = factory.headers(mentor)
    monday = week_start(4)
    responses = await asyncio.gather(*(
        book(client, headers, mentees[i % 6],
             monday + timedelta(days=i % 2, hours=9 + i % 4, minutes=(i % 3) * 20), 45)
        for i in range(40)))
    assert Counter(r.status_code for r in responses).keys() <= {201, 409}
    assert {r.json()["code"] for r in responses if r.status_code == 409} \
        <= {"double_booking", "capacity_exceeded"}
    async with system_db.transaction(None) as session:
        overlaps = await session.scalar(text("""
            select count(*) from sessions a join sessions b
              on a.id < b.id and a.status <> 'cancelled' and b.status <> 'cancelled'
             and (a.mentor_id = b.mentor_id or a.mentee_id = b.mentee_id)
             and tstzrange(a.starts_at, a.ends_at, '[)') && tstzrange(b.starts_at, b.ends_at, '[)')
             where a.mentor_id = :m or b.mentor_id = :m"""), {"m": mentor.id})
    assert overlaps == 0
    won = sum(r.status_code == 201 for r in responses)
    assert won == await live_sessions(factory, mentor)
    assert 1 <= won <= 4


async def test_mentor_row_lock_works_for_the_app_role_under_rls(factory, app_db):
    """The capacity lock is taken by the API's role (RLS on): the mentor may lock their own
    row, a second transaction then waits for it, and another mentor's row is not lockable
    (invisible) at all."""
    mentor, other = await factory.mentor(), await factory.mentor()
    me = Principal(mentor.id, "mentor")
    lock = text("select id from users where id = :id for no key update")
    async with app_db.transaction(me) as first:
        assert await first.scalar(lock, {"id": mentor.id}) == mentor.id
        assert await first.scalar(lock, {"id": other.id}) is None
        with pytest.raises(DBAPIError) as waited:
            async with app_db.transaction(me) as second:
                await second.execute(text("set local lock_timeout = '200ms'"))
                await second.execute(lock, {"id": mentor.id})
        assert waited.value.orig.__cause__.sqlstate == "55P03"  # lock_not_available
