"""Builders for inbound events and small helpers shared by the events tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from app.services.events.relay import relay_pass

NOW = datetime.now(UTC)


def event(type_: str, data: dict[str, Any], *, id: uuid.UUID | None = None,
          occurred_at: datetime | None = None) -> dict[str, Any]:
    return {
        "id": str(id or uuid.uuid4()),
        "type": type_,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
        "source": "tests",
        "data": data,
    }


def mission_submitted(mentee_id: uuid.UUID, *, submission_id: uuid.UUID | None = None,
                      submitted_at: datetime | None = None, **kw: Any) -> dict[str, Any]:
    return event("mission.submitted", {
        "submission_id": str(submission_id or uuid.uuid4()),
        "mentee_id": str(mentee_id),
        "mission_id": str(uuid.uuid4()),
        "title": "Build a portfolio page",
        "submitted_at": (submitted_at or datetime.now(UTC)).isoformat(),
        "url": "https://missions.example/submissions/1",
    }, **kw)


async def service_headers(factory) -> dict[str, str]:
    return await factory.role_headers("service")


async def scalar(system_db, sql: str, **params: Any) -> Any:
    async with system_db.transaction(None) as session:
        return await session.scalar(text(sql), params)


async def rows(system_db, sql: str, **params: Any) -> list[Any]:
    async with system_db.transaction(None) as session:
        return list((await session.execute(text(sql), params)).all())


async def relay_until_published(system_db, redis, settings, ids, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while await scalar(system_db, "select count(*) from outbox_events where id = any(:ids) "
                                  "and published_at is null", ids=list(ids)):
        assert time.monotonic() < deadline, "relay did not publish everything in time"
        result = await relay_pass(system_db, redis, settings=settings, limit=500)
        if not result.claimed:
            await asyncio.sleep(0.05)


async def director_ids(system_db) -> set:
    """Every active director: they also receive assignment, flag, capacity and risk events
    (app/core/outbox.py DIRECTOR_EVENTS)."""
    return set(await scalar(system_db, "select director_ids()"))
