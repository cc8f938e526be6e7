"""Flags: POST/PATCH /api/v1/mentor/flags, GET /api/v1/director/flags, and privacy."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from app.core.auth import Principal
from app.models import Flag
from tests.support.workspace_support import body_without_echo, load, outbox_events

FLAGS = "/api/v1/mentor/flags"
DIRECTOR_FLAGS = "/api/v1/director/flags"


@pytest.fixture
async def team(factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    directors = [await factory.user("director") for _ in range(2)]
    return {"mentor": mentor, "mentee": mentee, "directors": directors,
            "headers": factory.headers(mentor), "director": factory.headers(directors[0])}


async def _raise(client, team, **fields):
    body = {"mentee_id": str(team["mentee"].id), "severity": "high",
            "category": "engagement", "note": "Missed three check-ins; family trouble"} | fields
    response = await client.post(FLAGS, headers=team["headers"], json=body)
    assert response.status_code == 201, response.text
    return response.json()


class TestRaise:
    async def test_raise_stores_and_notifies_directors_and_mentor(self, client, system_db,
                                                                   team):
        flag = await _raise(client, team, severity="critical")
        assert flag["status"] == "open" and flag["raised_by"] == str(team["mentor"].id)
        assert flag["mentee_name"] == team["mentee"].name
        row = await load(system_db, Flag, uuid.UUID(flag["id"]))
        assert (row.severity, row.note) == ("critical", "Missed three check-ins; family trouble")

        [event] = await outbox_events(system_db, type="flag.raised", flag_id=flag["id"])
        assert event.refresh_priority == "urgent"
        director_ids = {d.id for d in team["directors"]}
        assert director_ids <= {uuid.UUID(i) for i in event.data["director_ids"]}
        assert director_ids | {team["mentor"].id} <= set(event.recipients)
        assert team["mentee"].id not in event.recipients
        # Every director, and only directors (the function reads past the mentor's RLS).
        async with system_db.transaction(None) as session:
            all_directors = set(await session.scalars(
                text("select id from users where role = 'director'")))
        assert {uuid.UUID(i) for i in event.data["director_ids"]} == all_directors
        assert "note" not in event.data and "family" not in str(event.data)

    async def test_another_mentors_mentee_is_404_and_nothing_written(self, client, factory,
                                                                     system_db, team):
        _, (stranger,) = await factory.mentor_with_mentees(1)
        response = await client.post(FLAGS, headers=team["headers"], json={
            "mentee_id": str(stranger.id), "severity": "low", "category": "x"})
        assert response.status_code == 404
        assert str(stranger.id) not in response.text
        async with system_db.transaction(None) as session:
            count = await session.scalar(
                text("select count(*) from flags where mentee_id = :m"), {"m": stranger.id})
        assert count == 0

    @pytest.mark.parametrize("fields", [
        {"severity": "extreme"}, {"category": ""}, {"mentee_id": "nope"}, {"category": None},
    ])
    async def test_bad_body_is_422(self, client, team, fields):
        body = {"mentee_id": str(team["mentee"].id), "severity": "high",
                "category": "engagement"} | fields
        response = await client.post(FLAGS, headers=team["headers"], json=body)
        assert response.status_code == 422


class TestResolve:
    async def test_resolve_once(self, client, system_db, team):
        flag = await _raise(client, team)
        url = f"{FLAGS}/{flag['id']}"
        response = await client.patch(url, headers=team["headers"],
                                      json={"status": "resolved", "resolution": "Talked it out"})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "resolved"
        row = await load(system_db, Flag, uuid.UUID(flag["id"]))
        assert (row.status, row.resolved_by, row.resolution) == (
            "resolved", team["mentor"].id, "Talked it out")
        assert row.resolved_at is not None
        [event] = await outbox_events(system_db, type="flag.resolved", flag_id=flag["id"])
        assert event.refresh_priority == "normal"
        assert team["mentee"].id not in event.recipients
        assert team["mentor"].id in event.recipients

        again = await client.patch(url, headers=team["headers"], json={"status": "resolved"})
        assert again.status_code == 409 and again.json()["code"] == "invalid_transition"
        assert len(await outbox_events(system_db, type="flag.resolved", flag_id=flag["id"])) == 1

    @pytest.mark.parametrize("body", [{"status": "open"}, {}, {"status": "closed"}])
    async def test_bad_body_is_422(self, client, team, body):
        flag = await _raise(client, team)
        response = await client.patch(f"{FLAGS}/{flag['id']}", headers=team["headers"],
                                      json=body)
        assert response.status_code == 422

    async def test_current_mentor_resolves_a_flag_of_the_previous_one(self, client, factory,
                                                                       team):
        flag = await _raise(client, team)
        new = await factory.mentor()
        moved = await client.post("/api/v1/director/assignments", headers=team["director"],
                                  json={"mentee_id": str(team["mentee"].id),
                                        "mentor_id": str(new.id)})
        assert moved.status_code == 201
        old = await client.patch(f"{FLAGS}/{flag['id']}", headers=team["headers"],
                                 json={"status": "resolved"})
        assert old.status_code == 404
        ok = await client.patch(f"{FLAGS}/{flag['id']}", headers=factory.headers(new),
                                json={"status": "resolved"})
        assert ok.status_code == 200


class TestDirectorList:
    async def test_filters_and_newest_first(self, client, factory, team):
        first = await _raise(client, team, severity="low")
        second = await _raise(client, team, severity="critical")
        third = await _raise(client, team, severity="critical")
        await client.patch(f"{FLAGS}/{third['id']}", headers=team["headers"],
                           json={"status": "resolved"})
        mine = {"mentee_id": str(team["mentee"].id), "limit": 200}

        def ids(response):
            assert response.status_code == 200, response.text
            return [f["id"] for f in response.json()["items"]]

        get = client.get
        assert ids(await get(DIRECTOR_FLAGS, headers=team["director"], params=mine)) == [
            third["id"], second["id"], first["id"]]
        assert ids(await get(DIRECTOR_FLAGS, headers=team["director"],
                             params=mine | {"status": "open"})) == [second["id"], first["id"]]
        assert ids(await get(DIRECTOR_FLAGS, headers=team["director"],
                             params=mine | {"severity": "critical"})) == [third["id"],
                                                                          second["id"]]
        assert ids(await get(DIRECTOR_FLAGS, headers=team["director"],
                             params=mine | {"severity": ["low", "medium"],
                                            "status": "open"})) == [first["id"]]
        body = (await get(DIRECTOR_FLAGS, headers=team["director"], params=mine)).json()
        assert body["items"][0]["note"] == "Missed three check-ins; family trouble"
        admin = await factory.user("admin")
        assert ids(await get(DIRECTOR_FLAGS, headers=factory.headers(admin), params=mine))

    async def test_cursor_walk(self, client, factory, team):
        created = [(await _raise(client, team))["id"] for _ in range(7)]
        seen, cursor = [], None
        while True:
            params = {"mentee_id": str(team["mentee"].id), "limit": 3}
            if cursor:
                params["cursor"] = cursor
            body = (await client.get(DIRECTOR_FLAGS, headers=team["director"],
                                     params=params)).json()
            seen += [f["id"] for f in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert seen == list(reversed(created))

    async def test_all_flags_across_mentors(self, client, factory, team):
        other_mentor, (other_mentee,) = await factory.mentor_with_mentees(1)
        other = await factory.flag(other_mentor, other_mentee)
        mine = await _raise(client, team)
        seen, cursor = set(), None
        while True:
            body = (await client.get(DIRECTOR_FLAGS, headers=team["director"],
                                     params={"limit": 200} | ({"cursor": cursor} if cursor
                                                              else {}))).json()
            seen |= {f["id"] for f in body["items"]}
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert {str(other.id), mine["id"]} <= seen

    @pytest.mark.parametrize("params", [{"severity": "extreme"}, {"status": "closed"},
                                        {"limit": 0}, {"cursor": "garbage!"}])
    async def test_bad_query_is_422(self, client, team, params):
        response = await client.get(DIRECTOR_FLAGS, headers=team["director"], params=params)
        assert response.status_code == 422


class TestMenteeNeverSeesFlags:
    async def test_mentee_gets_403_on_flag_routes_and_no_rows(self, client, factory, app_db,
                                                              team):
        flag = await _raise(client, team)
        mentee = factory.headers(team["mentee"])
        listed = await client.get(DIRECTOR_FLAGS, headers=mentee)
        raised = await client.post(FLAGS, headers=mentee, json={
            "mentee_id": str(team["mentee"].id), "severity": "low", "category": "x"})
        resolved = await client.patch(f"{FLAGS}/{flag['id']}", headers=mentee,
                                      json={"status": "resolved"})
        for response in (listed, raised, resolved):
            assert response.status_code == 403, response.text
            text_ = body_without_echo(response)
            assert "family" not in text_ and flag["id"] not in text_
        async with app_db.transaction(Principal(team["mentee"].id, "mentee")) as session:
            assert (await session.execute(text("select * from flags"))).all() == []

    async def test_mentor_gets_403_on_director_list(self, client, team):
        response = await client.get(DIRECTOR_FLAGS, headers=team["headers"])
        assert response.status_code == 403 and response.json()["code"] == "wrong_role"
