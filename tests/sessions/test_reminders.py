"""`session.reminder` at 24 h and 60 min: armed by the database on booking, re-armed on a
reschedule, sent once per session and reminder however many workers run, and after a
worker died mid-batch; sent late only while the session has not started."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from app.core.db import Database
from app.models import OutboxEvent, SessionTimer
from app.services.sessions.jobs import send_session_reminders
from app.services.sessions.reminders import send_due_reminders
from tests.support.session_helpers import book

MINUTE = timedelta(minutes=1)


async def timers(factory, session_id) -> dict[str, tuple[datetime, datetime | None]]:
    async def load(session):
        rows = await session.scalars(select(SessionTimer).where(
            SessionTimer.session_id == session_id))
        return {r.kind: (r.due_at, r.done_at) for r in rows}
    return await factory.run(load)


async def reminders_sent(factory, session_ids) -> Counter:
    ids = [str(i) for i in session_ids]

    async def load(session):
        rows = await session.execute(
            select(OutboxEvent.data["session_id"].astext,
                   OutboxEvent.data["minutes_before"].as_integer())
            .where(OutboxEvent.type == "session.reminder",
                   OutboxEvent.data["session_id"].astext.in_(ids)))
        return Counter(tuple(r) for r in rows)
    return await factory.run(load)


async def run_at(system_db: Database, now: datetime, batch: int = 500):
    async with system_db.transaction(None) as session:
        return await send_due_reminders(session, now=now, batch=batch)


def hour(hours: float) -> datetime:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(second=0, microsecond=0)


class TestArming:
    async def test_booking_arms_both_reminders_and_the_followup(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        at = hour(30)
        body = (await book(client, factory.headers(mentor), mentee, at)).json()
        assert await timers(factory, body["id"]) == {
            "reminder:1440": (at - timedelta(hours=24), None),
            "reminder:60": (at - timedelta(hours=1), None),
            "followup": (at + timedelta(hours=3), None),
        }

    async def test_booking_less_than_a_day_ahead_gets_only_reminders_still_ahead(
            self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        soon = (await book(client, factory.headers(mentor), mentee, hour(3))).json()
        assert set(await timers(factory, soon["id"])) == {"reminder:60", "followup"}
        sooner = (await book(client, factory.headers(mentor), mentee, hour(0.75))).json()
        assert set(await timers(factory, sooner["id"])) == {"followup"}

    async def test_reschedule_rearms_and_cancel_disarms(self, client, factory, system_db):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        headers = factory.headers(mentor)
        at = hour(30)
        body = (await book(client, headers, mentee, at)).json()
        # The 24-hour reminder goes out...
        await run_at(system_db, at - timedelta(hours=24) + MINUTE)
        assert await reminders_sent(factory, [body["id"]]) == {(body["id"], 1440): 1}
        # ... then the session moves two days later: both reminders are armed again.
        later = at + timedelta(days=2)
        moved = await client.patch(f"/api/v1/mentor/sessions/{body['id']}", headers=headers,
                                   json={"starts_at": later.isoformat()})
        assert moved.status_code == 200, moved.text
        armed = await timers(factory, body["id"])
        assert armed["reminder:1440"] == (later - timedelta(hours=24), None)
        assert armed["reminder:60"] == (later - timedelta(hours=1), None)
        await run_at(system_db, later - timedelta(hours=24) + MINUTE)
        assert await reminders_sent(factory, [body["id"]]) == {(body["id"], 1440): 2}
        cancelled = await client.patch(f"/api/v1/mentor/sessions/{body['id']}",
                                       headers=headers, json={"status": "cancelled"})
        assert cancelled.status_code == 200
        assert set(await timers(factory, body["id"])) == {"reminder:1440"}  # the sent one
        await run_at(system_db, later)
        assert await reminders_sent(factory, [body["id"]]) == {(body["id"], 1440): 2}


class TestSending:
    async def test_each_reminder_once_with_its_fields_to_both_people(
            self, client, factory, system_db):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        at = hour(30)
        body = (await book(client, factory.headers(mentor), mentee, at)).json()
        assert (await run_at(system_db, at - timedelta(hours=25))).sent == 0  # not yet
        for _ in range(2):
            await run_at(system_db, at - timedelta(minutes=59))
        assert await reminders_sent(factory, [body["id"]]) == {
            (body["id"], 1440): 1, (body["id"], 60): 1}

        async def load(session):
            return list(await session.scalars(select(OutboxEvent).where(
                OutboxEvent.type == "session.reminder",
                OutboxEvent.data["session_id"].astext == body["id"])))
        for event in await factory.run(load):
            assert set(event.recipients) == {mentor.id, mentee.id}
            assert event.data["meeting_url"] == body["meeting_url"]
            assert event.data["starts_at"].startswith(at.strftime("%Y-%m-%dT%H:%M"))

    async def test_late_reminder_only_while_the_session_has_not_started(
            self, client, factory, system_db):
        mentor, (a, b) = await factory.mentor_with_mentees(2)
        at = hour(30)
        first = (await book(client, factory.headers(mentor), a, at)).json()
        second = (await book(client, factory.headers(mentor), b, at + timedelta(hours=2))
                  ).json()
        # Workers were down for a day: at `at + 1 min` the first session has started, the
        # second has not (its 24-hour reminder is late, its 60-minute one not due yet).
        await run_at(system_db, at + MINUTE)
        assert await reminders_sent(factory, [first["id"], second["id"]]) == {
            (second["id"], 1440): 1}
        assert all(done for _, done in (await timers(factory, first["id"])).values()
                   if _ < at)  # the first's missed reminders are closed, not pending

    async def test_several_workers_at_once_send_each_reminder_once(
            self, client, factory, system_db, settings):
        mentors = [await factory.mentor_with_mentees(3) for _ in range(4)]
        at = hour(30)
        ids = []
        for mentor, mentees in mentors:
            for i, mentee in enumerate(mentees):
                response = await book(client, factory.headers(mentor), mentee,
                                      at + timedelta(hours=i * 2))
                ids.append(response.json()["id"])
        # Eight workers, each its own connection, small batches so they interleave.
        workers = [Database.connect(settings.worker_db_url, settings, pool_size=1,
                                    max_overflow=0) for _ in range(8)]
        # Every 24-hour reminder is due (the last at at + 4 h - 24 h), no 60-minute one.
        moment = at - timedelta(hours=19) + MINUTE
        try:
            runs = await asyncio.gather(*(_drain(db, moment) for db in workers))
        finally:
            for db in workers:
                await db.dispose()
        sent = await reminders_sent(factory, ids)
        assert sent == {(i, 1440): 1 for i in ids}
        assert sum(runs) == sum(sent.values())

    async def test_a_worker_killed_mid_batch_leaves_its_reminders_to_the_next(
            self, client, factory, system_db, settings):
        mentor, mentees = await factory.mentor_with_mentees(3)
        at = hour(30)
        ids = [(await book(client, factory.headers(mentor), m, at + timedelta(hours=i * 2))
                ).json()["id"] for i, m in enumerate(mentees)]
        moment = at + MINUTE - timedelta(hours=24) + timedelta(hours=4)
        doomed = Database.connect(settings.worker_db_url, settings, pool_size=1,
                                  max_overflow=0)
        try:
            with pytest.raises(Exception):  # noqa: B017 (the backend dies under it)
                async with doomed.transaction(None) as session:
                    pid = await session.scalar(text("select pg_backend_pid()"))
                    claimed = await send_due_reminders(session, now=moment, batch=2)
                    assert claimed.sent == 2
                    # Meanwhile another worker skips the rows this one holds.
                    other = await run_at(system_db, moment, batch=10)
                    assert other.sent == 1
                    await scalar_kill(system_db, pid)
                    await session.execute(text("select 1"))
        finally:
            await doomed.dispose()
        assert sum((await reminders_sent(factory, ids)).values()) == 1
        # The next run sends what the dead worker had claimed.
        assert (await run_at(system_db, moment)).sent >= 2
        assert await reminders_sent(factory, ids) == {(i, 1440): 1 for i in ids}

    async def test_the_cron_job_drains_what_is_due_now(self, client, factory, system_db,
                                                        settings):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        body = (await book(client, factory.headers(mentor), mentee, hour(30))).json()
        async with system_db.transaction(None) as session:  # as if a day had passed
            await session.execute(text(
                "update session_timers set due_at = now() - interval '1 minute' "
                "where session_id = :id and kind = 'reminder:1440'"), {"id": body["id"]})
        result = await send_session_reminders({"db": system_db, "settings": settings})
        assert result["sent"] >= 1
        assert await reminders_sent(factory, [body["id"]]) == {(body["id"], 1440): 1}


async def scalar_kill(system_db: Database, pid: int) -> None:
    async with system_db.transaction(None) as session:
        await session.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})


async def _drain(database: Database, now: datetime) -> int:
    sent = 0
    while True:
        async with database.transaction(None) as session:
            run = await send_due_reminders(session, now=now, batch=2)
        sent += run.sent
        if run.claimed == 0:
            return sent


async def test_reminder_timers_are_not_writable_by_the_api_role(app_db, factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    row = await factory.session(mentor, mentee, starts_at=hour(30))
    from app.core.auth import Principal
    async with app_db.transaction(Principal(mentor.id, "mentor")) as session:
        assert await session.scalar(select(func.count()).select_from(SessionTimer)) == 0
    with pytest.raises(Exception):  # noqa: B017 (permission denied)
        async with app_db.transaction(Principal(mentor.id, "mentor")) as session:
            await session.execute(text("update session_timers set done_at = now() "
                                       "where session_id = :id"), {"id": row.id})
