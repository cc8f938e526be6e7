"""The SLA sweep: escalation at 75 % of the window, overdue after due_at, one event per item
that becomes overdue, nothing new on a second sweep."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from pydantic_core import to_jsonable_python
from sqlalchemy import select

from app.config import Settings, get_settings
from app.core.db import Database
from app.models import OutboxEvent, User, WorkItem
from app.services.workqueue.prioritizer import sweep_work_queue
from tests.support.factories import Factory

WINDOW = timedelta(hours=100)


async def item(factory: Factory, mentee: User, *, now: datetime, elapsed: float,
               priority: str = "low", status: str = "open", window: timedelta = WINDOW,
               kind: str = "risk_assessment") -> WorkItem:
    """An item whose SLA window is `elapsed` (a share, may exceed 1) gone at `now`."""
    created = now - window * elapsed
    row = WorkItem(kind=kind, priority=priority, status=status, mentee_id=mentee.id,
                   source_key=f"test:{uuid.uuid4()}", title="Check in", created_at=created,
                   due_at=created + window)
    await factory.add(row)
    return row


async def reload(system_db: Database, row: WorkItem) -> WorkItem:
    async with system_db.transaction(None) as session:
        return await session.get_one(WorkItem, row.id)


async def overdue_events(system_db: Database, rows: list[WorkItem],
                         type: str = "workqueue.item_overdue") -> list[OutboxEvent]:
    async with system_db.transaction(None) as session:
        return list(await session.scalars(select(OutboxEvent).where(
            OutboxEvent.type == type,
            OutboxEvent.data["item_id"].astext.in_([str(r.id) for r in rows]),
        )))


async def sweep(system_db: Database, now: datetime, settings: Settings | None = None):
    return await sweep_work_queue(system_db, settings=settings or get_settings(), now=now)


class TestEscalation:
    async def test_priority_rises_one_step_once_75_percent_has_passed(
        self, factory: Factory, system_db: Database
    ) -> None:
        now = datetime.now(UTC)
        mentee = await factory.mentee()
        at_74 = await item(factory, mentee, now=now, elapsed=0.74)
        at_76 = await item(factory, mentee, now=now, elapsed=0.76)
        normal = await item(factory, mentee, now=now, elapsed=0.76, priority="normal")
        high = await item(factory, mentee, now=now, elapsed=0.76, priority="high")
        urgent = await item(factory, mentee, now=now, elapsed=0.76, priority="urgent")

        await sweep(system_db, now)

        assert [(await reload(system_db, r)).priority for r in
                (at_74, at_76, normal, high, urgent)] == [
            "low", "normal", "high", "urgent", "urgent"]
        assert (await reload(system_db, at_74)).escalated_at is None
        assert (await reload(system_db, at_76)).escalated_at == now
        assert not (await reload(system_db, at_76)).overdue
        # Later sweeps raise nothing again, even past 75 % for the other one.
        await sweep(system_db, now + WINDOW * 0.02)
        await sweep(system_db, now + WINDOW * 0.1)
        assert (await reload(system_db, at_74)).priority == "normal"
        assert (await reload(system_db, at_76)).priority == "normal"
        assert (await reload(system_db, normal)).priority == "high"

    async def test_an_escalation_is_a_live_event_to_the_mentor_once(
        self, factory: Factory, system_db: Database
    ) -> None:
        now = datetime.now(UTC)
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        at_76 = await item(factory, mentee, now=now, elapsed=0.76)
        at_50 = await item(factory, mentee, now=now, elapsed=0.50)

        result = await sweep(system_db, now)
        assert result.escalated >= 1
        (event,) = await overdue_events(system_db, [at_76, at_50],
                                        type="workqueue.item_escalated")
        assert event.recipients == [mentor.id]
        assert event.refresh_priority == "high"
        assert event.data == {
            "item_id": str(at_76.id), "kind": "risk_assessment", "priority": "normal",
            "mentee_id": str(mentee.id), "due_at": to_jsonable_python(at_76.due_at),
            "title": "Check in", "escalated_at": to_jsonable_python(now),
        }
        await sweep(system_db, now + timedelta(minutes=5))  # nothing new for at_76
        assert len(await overdue_events(system_db, [at_76],
                                        type="workqueue.item_escalated")) == 1

    async def test_done_items_are_left_alone(self, factory: Factory,
                                             system_db: Database) -> None:
        now = datetime.now(UTC)
        done = await item(factory, await factory.mentee(), now=now, elapsed=1.5, status="done")
        await sweep(system_db, now)
        row = await reload(system_db, done)
        assert (row.priority, row.overdue, row.escalated_at) == ("low", False, None)
        assert await overdue_events(system_db, [done]) == []


class TestOverdue:
    async def test_overdue_after_due_at_with_one_event(
        self, factory: Factory, system_db: Database
    ) -> None:
        now = datetime.now(UTC)
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        before = await item(factory, mentee, now=now, elapsed=0.99)  # due in 1 h
        after = await item(factory, mentee, now=now, elapsed=1.01)  # due 1 h ago

        result = await sweep(system_db, now)
        assert result.overdue >= 1 and result.events == result.overdue + result.escalated
        assert not (await reload(system_db, before)).overdue
        late = await reload(system_db, after)
        assert late.overdue and late.priority == "normal"  # escalated in the same sweep
        (event,) = await overdue_events(system_db, [before, after])
        assert event.recipients == [mentor.id]
        assert event.refresh_priority == "high"
        assert event.occurred_at == now
        assert event.data == {
            "item_id": str(after.id), "kind": "risk_assessment", "priority": "normal",
            "mentee_id": str(mentee.id), "due_at": to_jsonable_python(after.due_at),
            "title": "Check in", "overdue": True,
        }

        # The second sweep emits nothing; the next item emits once it is due.
        again = await sweep(system_db, now + timedelta(minutes=5))
        assert [e.id for e in await overdue_events(system_db, [before, after])] == [event.id]
        assert again.events == again.overdue + again.escalated
        await sweep(system_db, now + timedelta(hours=2))
        await sweep(system_db, now + timedelta(hours=3))
        events = await overdue_events(system_db, [before, after])
        assert sorted(e.data["item_id"] for e in events) == sorted(
            [str(before.id), str(after.id)])

    async def test_item_of_a_mentee_without_mentor_has_no_recipient(
        self, factory: Factory, system_db: Database
    ) -> None:
        now = datetime.now(UTC)
        row = await item(factory, await factory.mentee(), now=now, elapsed=2)
        await sweep(system_db, now)
        (event,) = await overdue_events(system_db, [row])
        assert event.recipients == []

    async def test_concurrent_sweeps_emit_once(self, factory: Factory,
                                               system_db: Database) -> None:
        now = datetime.now(UTC)
        mentee = await factory.mentee()
        rows = [await item(factory, mentee, now=now, elapsed=1.1) for _ in range(20)]
        await asyncio.gather(*(sweep(system_db, now) for _ in range(4)))
        events = await overdue_events(system_db, rows)
        assert sorted(e.data["item_id"] for e in events) == sorted(str(r.id) for r in rows)

    async def test_a_backlog_is_swept_in_batches(self, factory: Factory, system_db: Database,
                                                 settings: Settings) -> None:
        now = datetime.now(UTC)
        mentee = await factory.mentee()
        # Older than anything other tests leave behind, so these come first in the batches.
        rows = [await item(factory, mentee, now=now - timedelta(days=3000), elapsed=1.5)
                for _ in range(7)]
        small = settings.model_copy(update={"sla_sweep_batch_size": 3})
        result = await sweep(system_db, now, small)
        assert result.batches >= 3 and result.changed >= 7
        events = await overdue_events(system_db, rows)
        assert sorted(e.data["item_id"] for e in events) == sorted(str(r.id) for r in rows)
        assert [(await reload(system_db, r)).priority for r in rows] == ["normal"] * 7
