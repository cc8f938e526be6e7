"""Small helpers shared by the session tests: future weeks, DST changes, booking calls."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from app.models import OutboxEvent, User

SESSIONS = "/api/v1/mentor/sessions"


def week_start(weeks_ahead: int = 2, zone: ZoneInfo | Any = UTC) -> datetime:
    """Local Monday 00:00 of the week `weeks_ahead` weeks from now (wholly in the future)."""
    day = datetime.now(zone).date() + timedelta(weeks=weeks_ahead)
    monday = day - timedelta(days=day.weekday())
    return datetime.combine(monday, time(), tzinfo=zone)


def dst_changes(zone: ZoneInfo, count: int = 2, after: date | None = None) -> list[date]:
    """The next `count` dates on which `zone`'s UTC offset changes (at least a week away)."""
    day = after or datetime.now(UTC).date() + timedelta(days=8)
    found: list[date] = []
    offset = datetime.combine(day, time(12), tzinfo=zone).utcoffset()
    while len(found) < count:
        day += timedelta(days=1)
        current = datetime.combine(day, time(12), tzinfo=zone).utcoffset()
        if current != offset:
            found.append(day)
            offset = current
    return found


async def book(client: httpx.AsyncClient, headers: dict[str, str], mentee: User | Any,
               starts_at: datetime, duration: int = 60, **extra: Any) -> httpx.Response:
    mentee_id = mentee.id if isinstance(mentee, User) else mentee
    return await client.post(SESSIONS, headers=headers, json={
        "mentee_id": str(mentee_id), "starts_at": starts_at.isoformat(),
        "duration_minutes": duration, **extra,
    })


async def outbox_events(factory, session_id: Any) -> list[OutboxEvent]:
    async def load(session):
        rows = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.data["session_id"].astext == str(session_id))
            .order_by(OutboxEvent.created_at, OutboxEvent.occurred_at))
        return list(rows)

    return await factory.run(load)
