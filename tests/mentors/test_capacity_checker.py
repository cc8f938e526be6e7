"""The capacity checker: `capacity.exceeded` once per mentor per ISO week (in the mentor's
own zone), for full weekly slots or more mentees than the maximum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from app.core.db import Database
from app.models import CapacityAlert, OutboxEvent, User
from app.services.mentors.capacity_checker import check_capacity
from tests.support.factories import ALWAYS_AVAILABLE, Factory

# A week no other test books sessions in: Wednesday of ISO week 2031-W11.
WEDNESDAY = datetime(2031, 3, 12, 12, 0, tzinfo=UTC)


async def check(system_db: Database, at: datetime, mentor: User | None = None):
    async with system_db.transaction(None) as session:
        return await check_capacity(session, at=at, mentor_id=mentor.id if mentor else None)


async def alerts_for(system_db: Database, mentor: User) -> list[OutboxEvent]:
    async with system_db.transaction(None) as session:
        return list(await session.scalars(select(OutboxEvent).where(
            OutboxEvent.type == "capacity.exceeded",
            OutboxEvent.data["mentor_id"].astext == str(mentor.id),
        ).order_by(OutboxEvent.created_at)))


async def full_week_mentor(factory: Factory, slots: int = 2, **fields) -> User:
    mentor, mentees = await factory.mentor_with_mentees(slots, mentor_capacity_weekly=slots,
                                                        **fields)
    for i, mentee in enumerate(mentees):
        await factory.session(mentor, mentee, starts_at=WEDNESDAY + timedelta(hours=i))
    return mentor


class TestCapacityExceeded:
    async def test_full_week_raises_one_event_per_week(
        self, factory: Factory, system_db: Database
    ) -> None:
        director = await factory.user("director")
        mentor = await full_week_mentor(factory)
        first = await check(system_db, WEDNESDAY)
        assert first.alerts >= 1
        (event,) = await alerts_for(system_db, mentor)
        assert event.refresh_priority == "high"
        assert mentor.id in event.recipients and director.id in event.recipients  # any order
        assert event.data == {
            "mentor_id": str(mentor.id), "iso_week": "2031-W11", "weekly_slots_used": 2,
            "weekly_slots_total": 2, "mentees_active": 2, "mentees_max": 20,
            "utilization": 1.0, "reasons": ["weekly_slots_full"],
        }
        # Every later check that week (hourly cron, after each booking) raises nothing.
        await check(system_db, WEDNESDAY + timedelta(hours=1))
        await check(system_db, WEDNESDAY + timedelta(days=2), mentor)
        assert len(await alerts_for(system_db, mentor)) == 1
        async with system_db.transaction(None) as session:
            (alert,) = await session.scalars(
                select(CapacityAlert).where(CapacityAlert.mentor_id == mentor.id))
        assert (alert.iso_week, alert.weekly_slots_used) == ("2031-W11", 2)

    async def test_below_capacity_raises_nothing(self, factory: Factory,
                                                 system_db: Database) -> None:
        mentor = await full_week_mentor(factory, slots=2)
        async with system_db.transaction(None) as session:
            await session.execute(
                User.__table__.update().where(User.id == mentor.id)
                .values(mentor_capacity_weekly=3))
        result = await check(system_db, WEDNESDAY, mentor)
        assert (result.mentors, result.exceeded, result.alerts) == (1, 0, 0)
        assert await alerts_for(system_db, mentor) == []

    async def test_zero_slots_and_no_sessions_is_not_full(self, factory: Factory,
                                                          system_db: Database) -> None:
        mentor = await factory.mentor(mentor_capacity_weekly=0)
        assert (await check(system_db, WEDNESDAY, mentor)).exceeded == 0

    async def test_more_mentees_than_the_maximum_raises_again_next_week(
        self, factory: Factory, system_db: Database
    ) -> None:
        mentor, _ = await factory.mentor_with_mentees(3, mentor_max_mentees=2)
        await check(system_db, WEDNESDAY, mentor)
        await check(system_db, WEDNESDAY + timedelta(days=3), mentor)  # Saturday, same week
        await check(system_db, WEDNESDAY + timedelta(days=7), mentor)
        events = await alerts_for(system_db, mentor)
        assert [(e.data["iso_week"], e.data["reasons"]) for e in events] == [
            ("2031-W11", ["mentees_over_max"]), ("2031-W12", ["mentees_over_max"])]

    async def test_the_week_is_the_mentors_own(self, factory: Factory,
                                               system_db: Database) -> None:
        tokyo = {**ALWAYS_AVAILABLE, "timezone": "Asia/Tokyo"}
        mentor, (mentee,) = await factory.mentor_with_mentees(
            1, mentor_capacity_weekly=1, mentor_availability=tokyo)
        # Sunday 20:00 UTC is Monday 05:00 in Tokyo: the next ISO week there.
        await factory.session(mentor, mentee, starts_at=datetime(2031, 3, 16, 20, tzinfo=UTC))
        assert (await check(system_db, WEDNESDAY, mentor)).exceeded == 0
        assert (await check(system_db, datetime(2031, 3, 16, 16, tzinfo=UTC), mentor)
                ).alerts == 1  # 01:00 Monday in Tokyo
        (event,) = await alerts_for(system_db, mentor)
        assert event.data["iso_week"] == "2031-W12"

    async def test_an_unknown_zone_counts_as_utc_and_stops_nothing(
        self, factory: Factory, system_db: Database
    ) -> None:
        broken = {**ALWAYS_AVAILABLE, "timezone": "Mars/Base"}  # bad data, not via the API
        mentor = await full_week_mentor(factory, mentor_availability=broken)
        try:
            healthy = await full_week_mentor(factory)
            result = await check(system_db, WEDNESDAY)  # every mentor, the broken one too
            assert result.alerts >= 2
            assert [e.data["iso_week"] for e in await alerts_for(system_db, mentor)] == [
                "2031-W11"]
            assert len(await alerts_for(system_db, healthy)) == 1
        finally:  # other areas' tests read every mentor: leave no bad zone behind
            async with system_db.transaction(None) as session:
                await session.execute(delete(User).where(User.id == mentor.id))


class TestCheckAfterBooking:
    async def test_filling_next_week_raises_for_that_week(
        self, client, factory: Factory, system_db: Database, settings
    ) -> None:
        """The check enqueued after a booking looks at the week the session lands in, not
        at the current one (the job runs with the session's start)."""
        from arq.jobs import Job

        from app.core.jobqueue import arq_client
        from app.core.redis import queue_name
        from app.services.mentors.jobs import check_mentor_capacity
        from tests.support.session_helpers import book, week_start

        mentor, mentees = await factory.mentor_with_mentees(2, mentor_capacity_weekly=2)
        next_week = week_start(1)
        for i, mentee in enumerate(mentees):
            response = await book(client, factory.headers(mentor), mentee,
                                  next_week + timedelta(days=1, hours=9 + i))
            assert response.status_code == 201, response.text
        day = (next_week + timedelta(days=1)).date().isoformat()
        job_id = f"capacity-check:{mentor.id}:{day}"
        pool = arq_client(settings)
        try:
            info = await Job(job_id, pool, _queue_name=queue_name(settings)).info()
        finally:
            await pool.aclose()
        assert info is not None and info.kwargs["at"].startswith(day)
        result = await check_mentor_capacity({"db": system_db}, str(mentor.id),
                                             at=info.kwargs["at"])
        assert result["alerts"] == 1
        (event,) = await alerts_for(system_db, mentor)
        year, week, _ = (next_week + timedelta(days=1)).isocalendar()
        assert event.data["iso_week"] == f"{year}-W{week:02d}"
        assert event.data["reasons"] == ["weekly_slots_full"]
