"""One-line builders for users, assignments, sessions and the rest. They write through the
workers' BYPASSRLS engine (as the system would), commit, and return the ORM object."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.config import Settings
from app.core.auth import mint_token
from app.core.db import Database
from app.models import Assignment, Flag, MentoringSession, User
from tests.support.token_audit import record as record_token

_counter = itertools.count(1)

ALWAYS_AVAILABLE = {
    "timezone": "UTC",
    "windows": [{"weekday": d, "start": "00:00", "end": "24:00"} for d in range(7)],
}


class Factory:
    def __init__(self, system: Database, settings: Settings) -> None:
        self.system = system
        self.settings = settings
        self._by_role: dict[str, User] = {}

    async def add(self, *objects: Any) -> None:
        async with self.system.transaction(None) as session:
            session.add_all(objects)

    async def run(self, fn, /, **kwargs):
        """Run `fn(session, **kwargs)` in one system transaction."""
        async with self.system.transaction(None) as session:
            return await fn(session, **kwargs)

    def token(self, user: User | uuid.UUID, role: str | None = None, **kw: Any) -> str:
        user_id = user.id if isinstance(user, User) else user
        return record_token(mint_token(user_id, role or user.role, self.settings, **kw))

    def headers(self, user: User | uuid.UUID, role: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, role)}"}

    async def role_user(self, role: str) -> User:
        """The (shared, created once) active user of `role` that `role_headers` signs for."""
        user = self._by_role.get(role)
        if user is None:
            user = self._by_role[role] = await self.user(role)
        return user

    async def role_headers(self, role: str) -> dict[str, str]:
        """Headers of `role_user(role)`: tokens are honoured only for a real user with that
        role."""
        return self.headers(await self.role_user(role))

    async def user(self, role: str = "mentee", **fields: Any) -> User:
        n = next(_counter)
        defaults: dict[str, Any] = {
            "id": uuid.uuid4(),
            "email": f"{role}{n}-{uuid.uuid4().hex[:6]}@example.test",
            "name": f"{role.title()} {n}",
            "role": role,
            "timezone": "UTC",
            "interests": [],
            "mentor_specialties": [],
        }
        if role == "mentor":
            defaults.update(is_mentor=True, mentor_capacity_weekly=10, mentor_max_mentees=20,
                            mentor_availability=ALWAYS_AVAILABLE)
        user = User(**{**defaults, **fields})
        await self.add(user)
        return user

    async def mentor(self, **fields: Any) -> User:
        return await self.user("mentor", **fields)

    async def mentee(self, **fields: Any) -> User:
        return await self.user("mentee", **fields)

    async def assign(self, mentor: User, mentee: User, **fields: Any) -> Assignment:
        assignment = Assignment(mentor_id=mentor.id, mentee_id=mentee.id, **fields)
        await self.add(assignment)
        return assignment

    async def mentor_with_mentees(self, n: int = 1, **mentor_fields: Any):
        mentor = await self.mentor(**mentor_fields)
        mentees = [await self.mentee() for _ in range(n)]
        for mentee in mentees:
            await self.assign(mentor, mentee)
        return mentor, mentees

    async def session(self, mentor: User, mentee: User, *, starts_at: datetime | None = None,
                      duration_minutes: int = 60, **fields: Any) -> MentoringSession:
        starts = starts_at or datetime.now(UTC) + timedelta(days=1)
        row = MentoringSession(
            mentor_id=mentor.id, mentee_id=mentee.id, starts_at=starts,
            duration_minutes=duration_minutes,
            meeting_url=f"https://meet.example/{uuid.uuid4().hex}",
            **{"ends_at": starts + timedelta(minutes=duration_minutes), **fields},
        )
        await self.add(row)
        return row

    async def flag(self, mentor: User, mentee: User, **fields: Any) -> Flag:
        row = Flag(mentee_id=mentee.id, raised_by=mentor.id,
                   severity=fields.pop("severity", "high"),
                   category=fields.pop("category", "engagement"),
                   note=fields.pop("note", "private note"), **fields)
        await self.add(row)
        return row

