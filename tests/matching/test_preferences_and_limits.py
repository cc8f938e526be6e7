"""Mentee preferences (PUT/GET /api/v1/mentee/preferences) and how the matcher honours them;
mentors' languages; one set of limits for the mentor fields in every writer."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from app.config import Settings
from app.core.db import Database
from app.main import create_app
from app.models import Assignment, MatchingRun, User
from app.models.user import MENTOR_CAPACITY_WEEKLY_MAX, MENTOR_MAX_MENTEES_MAX
from app.services.matching.engine import NO_CAPACITY, TIMEZONE_LIMIT
from app.services.matching.execution import execute_matching_run
from tests.support.events_helpers import event, service_headers
from tests.support.factories import ALWAYS_AVAILABLE, Factory

PREFERENCES = "/api/v1/mentee/preferences"


def zone(name: str) -> dict[str, Any]:
    return {"timezone": name, "mentor_availability": {**ALWAYS_AVAILABLE, "timezone": name}}


async def run(system_db: Database, settings: Settings, mentees: list[User],
              mentors: list[User]) -> MatchingRun:
    result = await execute_matching_run(
        system_db, settings=settings, job_id=f"match-test-{uuid.uuid4()}",
        mentee_ids=[m.id for m in mentees], mentor_ids=[m.id for m in mentors])
    async with system_db.transaction(None) as session:
        return await session.scalar(select(MatchingRun).where(
            MatchingRun.job_id == result["job_id"]))


async def mentor_of(system_db: Database, mentee: User) -> uuid.UUID | None:
    async with system_db.transaction(None) as session:
        return await session.scalar(select(Assignment.mentor_id).where(
            Assignment.mentee_id == mentee.id, Assignment.ended_at.is_(None)))


class TestPreferencesRoute:
    async def test_put_then_get(self, client: httpx.AsyncClient, factory: Factory) -> None:
        mentee = await factory.mentee()
        headers = factory.headers(mentee)
        empty = await client.get(PREFERENCES, headers=headers)
        assert empty.status_code == 200
        assert empty.json() == {"specialties": [], "languages": [],
                                "max_timezone_offset_hours": None,
                                "preferred_mentor_ids": [], "updated_at": None}
        wanted = uuid.uuid4()
        body = {"specialties": [" Data ", "Data", "ml"], "languages": ["pt-BR", "EN", "en"],
                "max_timezone_offset_hours": 3.5,
                "preferred_mentor_ids": [str(wanted), str(wanted)]}
        put = await client.put(PREFERENCES, headers=headers, json=body)
        assert put.status_code == 200, put.text
        stored = (await client.get(PREFERENCES, headers=headers)).json()
        assert stored["specialties"] == ["Data", "ml"]
        assert stored["languages"] == ["pt-br", "en"]
        assert stored["max_timezone_offset_hours"] == 3.5
        assert stored["preferred_mentor_ids"] == [str(wanted)]
        assert stored["updated_at"] is not None
        # PUT replaces: what is left out goes back to its default.
        await client.put(PREFERENCES, headers=headers, json={"languages": ["fr"]})
        again = (await client.get(PREFERENCES, headers=headers)).json()
        assert (again["specialties"], again["max_timezone_offset_hours"]) == ([], None)

    @pytest.mark.parametrize("body", [
        {"max_timezone_offset_hours": -1}, {"max_timezone_offset_hours": 12.5},
        {"max_timezone_offset_hours": "NaN"}, {"languages": ["english!"]},
        {"languages": ["e"]}, {"specialties": [""]}, {"specialties": ["a\x00b"]},
        {"preferred_mentor_ids": ["nope"]},
        {"preferred_mentor_ids": [str(uuid.uuid4()) for _ in range(11)]},
        {"colour": "blue"},
    ])
    async def test_bad_preferences_are_422_and_change_nothing(
        self, client: httpx.AsyncClient, factory: Factory, body: dict[str, Any]
    ) -> None:
        mentee = await factory.mentee()
        headers = factory.headers(mentee)
        await client.put(PREFERENCES, headers=headers, json={"languages": ["en"]})
        response = await client.put(PREFERENCES, headers=headers, json=body)
        assert response.status_code == 422, response.text
        assert (await client.get(PREFERENCES, headers=headers)).json()["languages"] == ["en"]

    async def test_only_mentees(self, client: httpx.AsyncClient, factory: Factory) -> None:
        for role in ("mentor", "director"):
            user = await factory.user(role)
            response = await client.put(PREFERENCES, headers=factory.headers(user), json={})
            assert response.status_code == 403

    async def test_a_mentee_cannot_read_anothers_preferences_through_rls(
        self, app_db: Database, factory: Factory, client: httpx.AsyncClient
    ) -> None:
        one, other = await factory.mentee(), await factory.mentee()
        await client.put(PREFERENCES, headers=factory.headers(one), json={"languages": ["en"]})
        async with app_db.transaction(None) as session:
            await session.execute(text(
                "select set_config('app.user_id', :u, true), set_config('app.role', 'mentee', "
                "true)"), {"u": str(other.id)})
            seen = await session.scalar(text("select count(*) from mentee_preferences"))
        assert seen == 0


class TestMatcherHonoursPreferences:
    async def test_the_offset_is_a_hard_limit_and_names_itself(
        self, client: httpx.AsyncClient, factory: Factory, system_db: Database,
        settings: Settings,
    ) -> None:
        tokyo = await factory.mentor(mentor_max_mentees=5, **zone("Asia/Tokyo"))
        limited = await factory.mentee(timezone="Europe/London")
        free = await factory.mentee(timezone="Europe/London")
        await client.put(PREFERENCES, headers=factory.headers(limited),
                         json={"max_timezone_offset_hours": 6})
        result = await run(system_db, settings, [limited, free], [tokyo])
        assert result.unplaced == {str(limited.id): TIMEZONE_LIMIT}
        assert await mentor_of(system_db, free) == tokyo.id
        assert await mentor_of(system_db, limited) is None

    async def test_preferred_mentor_and_language_raise_fit(
        self, client: httpx.AsyncClient, factory: Factory, system_db: Database,
        settings: Settings,
    ) -> None:
        plain = await factory.mentor(mentor_specialties=["go"], mentor_max_mentees=1)
        wanted = await factory.mentor(mentor_max_mentees=1)
        speaks = await factory.mentor(mentor_max_mentees=1, languages=["es"])
        choosy = await factory.mentee(interests=["go"])
        spanish = await factory.mentee(interests=["go"])
        other = await factory.mentee(interests=["go"])
        await client.put(PREFERENCES, headers=factory.headers(choosy),
                         json={"preferred_mentor_ids": [str(wanted.id)]})
        await client.put(PREFERENCES, headers=factory.headers(spanish),
                         json={"languages": ["es-MX"]})
        result = await run(system_db, settings, [choosy, spanish, other],
                           [plain, wanted, speaks])
        assert result.assigned_count == 3 and result.unplaced == {}
        assert await mentor_of(system_db, choosy) == wanted.id
        assert await mentor_of(system_db, spanish) == speaks.id
        assert await mentor_of(system_db, other) == plain.id
        async with system_db.transaction(None) as session:
            reasons = await session.scalar(select(Assignment.reasons).where(
                Assignment.mentee_id == choosy.id, Assignment.ended_at.is_(None)))
        assert "preference: preferred mentor" in reasons

    async def test_without_a_limit_a_full_programme_is_no_capacity(
        self, factory: Factory, system_db: Database, settings: Settings
    ) -> None:
        mentor = await factory.mentor(mentor_max_mentees=1)
        mentees = [await factory.mentee(), await factory.mentee()]
        result = await run(system_db, settings, mentees, [mentor])
        assert sorted(result.unplaced.values()) == [NO_CAPACITY]


class TestMentorFieldLimits:
    """The same limits in every writer, from app/models/user.py."""

    async def test_profile(self, client: httpx.AsyncClient, factory: Factory) -> None:
        mentor = await factory.mentor()
        headers = factory.headers(mentor)
        profile = (await client.get("/api/v1/mentor/profile", headers=headers)).json()
        body = {k: profile[k] for k in ("mentor_capacity_weekly", "mentor_max_mentees",
                                        "mentor_specialties", "mentor_availability")}
        for field, limit in (("mentor_capacity_weekly", MENTOR_CAPACITY_WEEKLY_MAX),
                             ("mentor_max_mentees", MENTOR_MAX_MENTEES_MAX)):
            over = await client.put("/api/v1/mentor/profile", headers=headers,
                                    json={**body, field: limit + 1})
            assert over.status_code == 422, field
            at = await client.put("/api/v1/mentor/profile", headers=headers,
                                  json={**body, field: limit, "languages": ["en-GB"]})
            assert at.status_code == 200, at.text
            assert at.json()[field] == limit and at.json()["languages"] == ["en-gb"]

    async def test_put_users_and_events(self, client: httpx.AsyncClient,
                                        factory: Factory) -> None:
        headers = await service_headers(factory)
        for field, limit in (("mentor_capacity_weekly", MENTOR_CAPACITY_WEEKLY_MAX),
                             ("mentor_max_mentees", MENTOR_MAX_MENTEES_MAX)):
            user_id = uuid.uuid4()
            data = {"email": f"m{user_id.hex[:10]}@example.com", "name": "M", "role": "mentor",
                    field: limit + 1}
            put = await client.put(f"/api/v1/users/{user_id}", headers=headers, json=data)
            assert put.status_code == 422, field
            posted = await client.post("/api/v1/events", headers=headers, json=event(
                "user.upserted", {"id": str(user_id), **data}))
            assert posted.status_code == 422, field
            ok = await client.put(f"/api/v1/users/{user_id}", headers=headers,
                                  json={**data, field: limit, "languages": ["fr"]})
            assert ok.status_code in (200, 201), ok.text
            assert ok.json()[field] == limit and ok.json()["languages"] == ["fr"]

    async def test_the_database_refuses_too(self, factory: Factory,
                                            system_db: Database) -> None:
        mentor = await factory.mentor()
        for column, value in (("mentor_max_mentees", MENTOR_MAX_MENTEES_MAX + 1),
                              ("mentor_capacity_weekly", MENTOR_CAPACITY_WEEKLY_MAX + 1)):
            with pytest.raises(IntegrityError):
                async with system_db.transaction(None) as session:
                    await session.execute(text(f"update users set {column} = :v where id = :i"),
                                          {"v": value, "i": mentor.id})

    async def test_admin_ui(self, settings: Settings, factory: Factory,
                            system_db: Database) -> None:
        from asgi_lifespan import LifespanManager
        password = "correct-horse-battery-staple"
        application = create_app(settings.model_copy(
            update={"admin_ui_password": SecretStr(password)}))
        director = await factory.user("director")
        mentor = await factory.mentor()
        async with LifespanManager(application), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=application), base_url="http://t",
                headers={"Origin": "http://t"}) as http:  # the admin UI's same-origin check
            await http.post("/admin/login", data={"username": director.email,
                                                  "password": password})
            # The API's email rule refuses the factories' reserved `.test` domain.
            form = {"name": mentor.name, "email": f"{mentor.id.hex[:12]}@example.org", "tier": "",
                    "timezone": "UTC", "mentor_capacity_weekly": "10", "save": "Save"}
            over = await http.post(f"/admin/users/edit/{mentor.id}", data={
                **form, "mentor_max_mentees": str(MENTOR_MAX_MENTEES_MAX + 1)})
            assert over.status_code == 400, over.status_code
            ok = await http.post(f"/admin/users/edit/{mentor.id}", data={
                **form, "mentor_max_mentees": str(MENTOR_MAX_MENTEES_MAX)})
            assert ok.status_code == 302, ok.text
        async with system_db.transaction(None) as session:
            saved = await session.get(User, mentor.id)
        assert saved.mentor_max_mentees == MENTOR_MAX_MENTEES_MAX
