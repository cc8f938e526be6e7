"""A reschedule racing a transfer (a reassignment with `sessions: transfer`), on real
Postgres with parallel transactions.

A reschedule reads the session unlocked, then locks its mentor's row and the session's
(app/services/sessions/changes.py `lock_with_mentor`). A transfer committed in between moves
the session to another mentor: the reschedule must then judge and write the session under
the NEW mentor's lock (whose bookings it races), never under the old mentor's. Afterwards no
session is left with a mentor who no longer has the mentee, no mentor or mentee has
overlapping live sessions, and every mentor's week and buffers hold.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import text

from tests.support.session_helpers import book, week_start
from tests.support.worker_helpers import wait_until

ASSIGN = "/api/v1/director/assignments"
ROUNDS = 10
# Lock waits in this database (pg_stat_activity's pid and datname are visible to any role;
# a row-lock waiter waits on the holder's transaction id, which names no database).
WAITING = text("""
    select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid
     where not l.granted and a.datname = current_database()""")


async def _someone_waits(system_db) -> bool:
    async with system_db.transaction(None) as session:
        return await session.scalar(WAITING) > 0


async def _transfer_by_hand(tx, *, session_id, old, new, mentee) -> None:
    """What a transfer writes (app/services/programme/reassign.py), in `tx`, which already
    holds the old mentor's row lock: the pair ends, the new one starts, the session moves."""
    await tx.execute(text("""
        update assignments set ended_at = now(), end_reason = 'reassigned'
         where mentor_id = :old and mentee_id = :mentee and ended_at is null"""),
        {"old": old, "mentee": mentee})
    await tx.execute(text("insert into assignments (id, mentor_id, mentee_id) "
                          "values (:id, :new, :mentee)"),
                     {"id": uuid.uuid4(), "new": new, "mentee": mentee})
    await tx.execute(text("update sessions set mentor_id = :new, sequence = sequence + 1 "
                          "where id = :id"), {"new": new, "id": session_id})


LOCK_USER = text("select 1 from users where id = :id for no key update")


async def test_mentee_reschedule_after_a_transfer_waits_for_the_new_mentor(
        client, factory, system_db):
    """The interleaving itself, made certain: the reschedule reads the session (mentor A),
    waits for A's row; meanwhile the session moves to B and B books another mentee into
    the target week (capacity 1), holding B's row. The reschedule must wait for B and then
    see that week full: 409 `capacity_exceeded`, never a second session in B's week."""
    a, (mentee,) = await factory.mentor_with_mentees(1)
    b, (other,) = await factory.mentor_with_mentees(1, mentor_capacity_weekly=1)
    row = await factory.session(a, mentee, starts_at=week_start(2) + timedelta(days=1, hours=10))
    target = week_start(3) + timedelta(days=2, hours=10)
    transfer, booking = system_db.sessions(), system_db.sessions()
    try:
        await transfer.execute(LOCK_USER, {"id": a.id})
        reschedule = asyncio.create_task(client.patch(
            f"/api/v1/mentee/sessions/{row.id}", headers=factory.headers(mentee),
            json={"starts_at": target.isoformat()}))
        await wait_until(lambda: _someone_waits(system_db), within=10,
                         message="the reschedule waits for A")
        await _transfer_by_hand(transfer, session_id=row.id, old=a.id, new=b.id,
                                mentee=mentee.id)
        await booking.execute(LOCK_USER, {"id": b.id})
        await booking.execute(text("""
            insert into sessions (id, mentor_id, mentee_id, starts_at, ends_at,
                                  duration_minutes, status, sequence)
            values (:id, :b, :q, :at, :ends, 60, 'scheduled', 0)"""),
            {"id": uuid.uuid4(), "b": b.id, "q": other.id, "at": target + timedelta(days=1),
             "ends": target + timedelta(days=1, hours=1)})
        await transfer.commit()
        await asyncio.sleep(0.2)  # the reschedule goes on: with B's lock, it waits again
        await wait_until(lambda: _done_or_waiting(reschedule, system_db), within=10,
                         message="the reschedule waits for B")
        await booking.commit()
        response = await reschedule
    finally:
        await transfer.close()
        await booking.close()
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "capacity_exceeded"
    assert await _live_in_week(system_db, b.id, week_start(3)) == 1


async def test_mentor_reschedule_of_a_session_transferred_away_is_404(client, factory,
                                                                      system_db):
    """The old mentor's reschedule read the session before the transfer committed: once
    the session is no longer theirs it is 404 (not a 500, not a write under their lock)."""
    a, (mentee,) = await factory.mentor_with_mentees(1)
    b = await factory.mentor()
    row = await factory.session(a, mentee, starts_at=week_start(2) + timedelta(days=1, hours=10))
    transfer = system_db.sessions()
    try:
        await transfer.execute(LOCK_USER, {"id": a.id})
        reschedule = asyncio.create_task(client.patch(
            f"/api/v1/mentor/sessions/{row.id}", headers=factory.headers(a),
            json={"starts_at": (week_start(3) + timedelta(hours=10)).isoformat()}))
        await wait_until(lambda: _someone_waits(system_db), within=10,
                         message="the reschedule waits for A")
        await _transfer_by_hand(transfer, session_id=row.id, old=a.id, new=b.id,
                                mentee=mentee.id)
        await transfer.commit()
        response = await reschedule
    finally:
        await transfer.close()
    assert response.status_code == 404, response.text
    async with system_db.transaction(None) as session:
        moved = (await session.execute(text(
            "select mentor_id, starts_at, sequence from sessions where id = :id"),
            {"id": row.id})).one()
    assert (moved.mentor_id, moved.starts_at, moved.sequence) == (b.id, row.starts_at, 1)


async def _done_or_waiting(task, system_db) -> bool:
    return task.done() or await _someone_waits(system_db)


async def _live_in_week(system_db, mentor_id, monday) -> int:
    async with system_db.transaction(None) as session:
        return await session.scalar(text("""
            select count(*) from sessions where mentor_id = :m and status <> 'cancelled'
               and starts_at >= :lo and starts_at < :hi"""),
            {"m": mentor_id, "lo": monday, "hi": monday + timedelta(days=7)})


async def test_reschedules_racing_transfers_and_bookings(client, factory, system_db):
    """Every round at once: a director transfers the mentee's session from A to B while
    the mentee and A each reschedule it into a week where B (capacity 2, 30-minute buffer)
    books two other mentees. Only domain answers; afterwards no orphan, no overlap, no
    week over capacity, no buffer broken."""
    director = factory.headers(await factory.user("director"))
    w2, w3 = week_start(2), week_start(3)
    mentees, b_mentors, calls = [], [], []

    async def call(method, url, headers, body):
        await asyncio.sleep(random.random() * 0.03)
        return await client.request(method, url, headers=headers, json=body)

    for i in range(ROUNDS):
        a, (p,) = await factory.mentor_with_mentees(1)
        b, (q1, q2) = await factory.mentor_with_mentees(
            2, mentor_capacity_weekly=2, mentor_buffer_minutes=30)
        row = await factory.session(a, p, starts_at=w2 + timedelta(days=1, hours=8 + i))
        mentees += [p, q1, q2]
        b_mentors.append(b)
        wed = w3 + timedelta(days=2, hours=10)
        calls += [
            call("POST", ASSIGN, director, {"mentee_id": str(p.id), "mentor_id": str(b.id),
                                            "sessions": "transfer"}),
            call("PATCH", f"/api/v1/mentee/sessions/{row.id}", factory.headers(p),
                 {"starts_at": wed.isoformat()}),
            call("PATCH", f"/api/v1/mentor/sessions/{row.id}", factory.headers(a),
                 {"starts_at": (wed + timedelta(minutes=75)).isoformat()}),
            book(client, factory.headers(b), q1, wed + timedelta(minutes=60), 30),
            book(client, factory.headers(b), q2, wed + timedelta(days=1), 60),
        ]
    random.shuffle(calls)
    responses = await asyncio.gather(*calls)
    assert all(r.status_code < 500 for r in responses), \
        [r.text for r in responses if r.status_code >= 500]
    codes = Counter(r.json().get("code") for r in responses if r.status_code >= 400)
    assert set(codes) <= {"not_found", "not_assigned", "no_mentor", "capacity_exceeded",
                          "double_booking", "outside_availability", "transfer_conflict"}, codes
    async with system_db.transaction(None) as session:
        ids = [m.id for m in mentees]
        orphans = (await session.execute(text("""
            select s.id from sessions s
             where s.mentee_id = any(:ids) and s.status = 'scheduled' and s.starts_at > now()
               and not exists (select 1 from assignments a where a.mentee_id = s.mentee_id
                                  and a.mentor_id = s.mentor_id and a.ended_at is null)"""),
            {"ids": ids})).all()
        overlaps = (await session.execute(text("""
            select x.id, y.id from sessions x join sessions y
              on x.id < y.id and (x.mentor_id = y.mentor_id or x.mentee_id = y.mentee_id)
             and x.starts_at < y.ends_at and y.starts_at < x.ends_at
             where x.status <> 'cancelled' and y.status <> 'cancelled'
               and (x.mentee_id = any(:ids) or y.mentee_id = any(:ids))"""),
            {"ids": ids})).all()
        buffers = (await session.execute(text("""
            select x.id, y.id from sessions x join sessions y
              on x.id < y.id and x.mentor_id = y.mentor_id
             and x.starts_at < y.ends_at + interval '30 minutes'
             and y.starts_at < x.ends_at + interval '30 minutes'
             where x.status <> 'cancelled' and y.status <> 'cancelled'
               and x.mentor_id = any(:b)"""), {"b": [b.id for b in b_mentors]})).all()
        weeks = (await session.execute(text("""
            select mentor_id, date_trunc('week', starts_at at time zone 'UTC'), count(*)
              from sessions where mentor_id = any(:b) and status <> 'cancelled'
             group by 1, 2 having count(*) > 2"""), {"b": [b.id for b in b_mentors]})).all()
    assert orphans == []
    assert overlaps == []  # no double booking
    assert buffers == []  # B's 30-minute buffer
    assert weeks == []
