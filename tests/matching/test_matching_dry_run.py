"""Dry runs (proposals with fit, components, reasons; nothing else written), per-run
weights, publishing (what still holds, what is skipped and why, twice is 409), a dry run
whose proposals retention expired."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text, update

from app.config import Settings
from app.core.db import Database
from app.models import Assignment, MatchingProposal, MatchingRun, OutboxEvent, User
from app.schemas.event_data import OUTBOUND_DATA
from app.services.compliance.retention import purge_expired
from tests.support.events_helpers import director_ids
from tests.support.factories import ALWAYS_AVAILABLE, Factory
from tests.support.worker_helpers import run_burst_worker

RUN = "/api/v1/director/matching/run"


def zone(name: str) -> dict[str, Any]:
    return {"timezone": name, "mentor_availability": {**ALWAYS_AVAILABLE, "timezone": name}}


async def count(system_db: Database, model, *where) -> int:
    async with system_db.transaction(None) as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def assignments_of(system_db: Database, mentees: list[User]) -> list[Assignment]:
    async with system_db.transaction(None) as session:
        return list(await session.scalars(select(Assignment).where(
            Assignment.mentee_id.in_([m.id for m in mentees]), Assignment.ended_at.is_(None))))


@pytest.fixture
async def cohort(factory: Factory) -> dict[str, Any]:
    """Two mentors (2 + 1 places), four mentees: three places for four."""
    go = await factory.mentor(mentor_specialties=["Go", "data"], mentor_max_mentees=2,
                              languages=["en", "fr"], **zone("Europe/Paris"))
    design = await factory.mentor(mentor_specialties=["design"], mentor_max_mentees=1,
                                  **zone("America/New_York"))
    mentees = [
        await factory.mentee(interests=["go"], timezone="Europe/Berlin", languages=["fr"]),
        await factory.mentee(interests=["design"], timezone="America/Chicago"),
        await factory.mentee(interests=["data", "go"], timezone="Europe/London"),
        await factory.mentee(interests=["art"], timezone="Asia/Tokyo"),
    ]
    director = await factory.user("director")
    return {"mentors": [go, design], "mentees": mentees, "director": director}


async def dry_run(client: httpx.AsyncClient, factory: Factory, settings: Settings,
                  cohort: dict[str, Any], **body: Any) -> dict[str, Any]:
    headers = factory.headers(cohort["director"])
    response = await client.post(RUN, headers=headers, json={
        "dry_run": True, "mentee_ids": [str(m.id) for m in cohort["mentees"]],
        "mentor_ids": [str(m.id) for m in cohort["mentors"]], **body})
    assert response.status_code == 202, response.text
    await run_burst_worker(settings)
    result = await client.get(response.json()["run_url"], headers=headers)
    assert result.status_code == 200, result.text
    return result.json()


class TestDryRun:
    async def test_proposals_with_fit_components_and_reasons_and_nothing_else_written(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings,
        system_db: Database, cohort: dict[str, Any],
    ) -> None:
        events_before = await count(system_db, OutboxEvent,
                                    OutboxEvent.type == "assignment.created")
        run = await dry_run(client, factory, settings, cohort)

        assert (run["status"], run["dry_run"], run["attempts"]) == ("done", True, 1)
        assert run["weights"] == {"specialty": 0.5, "timezone": 0.2, "load": 0.15,
                                  "language": 0.15}
        assert run["assigned_count"] == 3 and run["unplaced_count"] == 1
        proposals = {p["mentee_id"]: p for p in run["proposals"]}
        assert len(proposals) == 3
        for p in proposals.values():
            assert sum(p["components"].values()) == pytest.approx(p["fit"], abs=2e-3)
            assert set(p["components"]) == {"specialty", "timezone", "load", "language",
                                            "preference"}
        go, design = cohort["mentors"]
        french = proposals[str(cohort["mentees"][0].id)]
        assert french["mentor_id"] == str(go.id)
        assert french["reasons"] == ["specialty: go", "timezone: 0 h apart",
                                     "load: 0 of 2 mentees", "language: fr"]
        assert french["components"]["language"] == pytest.approx(0.15)
        assert proposals[str(cohort["mentees"][1].id)]["mentor_id"] == str(design.id)
        assert run["total_fit"] == pytest.approx(sum(p["fit"] for p in proposals.values()),
                                                 abs=1e-3)
        # Nothing but the run and its proposals.
        assert await assignments_of(system_db, cohort["mentees"]) == []
        assert await count(system_db, OutboxEvent,
                           OutboxEvent.type == "assignment.created") == events_before

    async def test_weights_are_validated_normalised_and_recorded(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings,
        cohort: dict[str, Any],
    ) -> None:
        run = await dry_run(client, factory, settings, cohort,
                            weights={"specialty": 2, "timezone": 0, "load": 0, "language": 2})
        assert run["weights"] == {"specialty": 0.5, "timezone": 0.0, "load": 0.0,
                                  "language": 0.5}
        for p in run["proposals"]:
            assert p["components"]["timezone"] == 0 and p["components"]["load"] == 0
        headers = factory.headers(cohort["director"])
        for weights in ({"specialty": -1}, {"specialty": 0, "timezone": 0, "load": 0,
                                            "language": 0}, {"seniority": 1},
                        {"load": "heavy"}, {"load": 1e9}):
            response = await client.post(RUN, headers=headers,
                                         json={"dry_run": True, "weights": weights})
            assert response.status_code == 422, (weights, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
        # A term left out keeps its default; the total is normalised.
        accepted = await client.post(RUN, headers=headers, json={
            "dry_run": True, "mentee_ids": [], "weights": {"language": 1.15}})
        assert accepted.status_code == 202
        assert accepted.json()["weights"] == {"specialty": 0.25, "timezone": 0.1,
                                              "load": 0.075, "language": 0.575}
        zero = await client.post(RUN, headers=headers, json={
            "weights": {"specialty": 0, "timezone": 0, "load": 0, "language": 0}})
        assert zero.json()["code"] == "invalid_weights"

    async def test_proposals_page_by_cursor_and_filter_by_mentee(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings,
        cohort: dict[str, Any],
    ) -> None:
        run = await dry_run(client, factory, settings, cohort)
        headers = factory.headers(cohort["director"])
        url = f"/api/v1/director/matching/runs/{run['job_id']}"
        seen, cursor = [], None
        while True:
            page = (await client.get(url, headers=headers, params={
                "limit": 2, **({"cursor": cursor} if cursor else {})})).json()
            seen += [p["mentee_id"] for p in page["proposals"]]
            cursor = page["proposals_next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(p["mentee_id"] for p in run["proposals"])
        one = (await client.get(url, headers=headers,
                                params={"mentee_id": seen[0]})).json()["proposals"]
        assert [p["mentee_id"] for p in one] == [seen[0]]
        forged = await client.get(url, headers=headers, params={"cursor": "bm9wZQ"})
        assert forged.status_code == 422 and forged.json()["code"] == "invalid_cursor"


class TestPublish:
    async def test_publish_commits_what_still_holds_and_reports_the_rest(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings,
        system_db: Database, cohort: dict[str, Any],
    ) -> None:
        run = await dry_run(client, factory, settings, cohort)
        proposals = {p["mentee_id"]: p for p in run["proposals"]}
        go, design = cohort["mentors"]
        first, second, third, _ = cohort["mentees"]
        assert {proposals[str(m.id)]["mentor_id"] for m in (first, third)} == {str(go.id)}
        # Meanwhile: a director assigns `second` elsewhere, and `go` loses a place.
        elsewhere = await factory.mentor()
        await factory.assign(elsewhere, second)
        async with system_db.transaction(None) as session:
            await session.execute(text("update users set mentor_max_mentees = 1 "
                                       "where id = :id"), {"id": go.id})
        headers = factory.headers(cohort["director"])
        url = f"/api/v1/director/matching/runs/{run['job_id']}/publish"

        response = await client.post(url, headers=headers, json={"exclude_mentee_ids": []})
        assert response.status_code == 200, response.text
        result = response.json()
        better = max((first, third), key=lambda m: proposals[str(m.id)]["fit"])
        worse = third if better is first else first
        assert result["published"] == 1
        assert sorted((s["mentee_id"], s["reason"]) for s in result["skipped"]) == sorted([
            (str(second.id), "mentee_not_waiting"), (str(worse.id), "mentor_full")])
        assert result["total_fit"] == pytest.approx(proposals[str(better.id)]["fit"])

        rows = await assignments_of(system_db, cohort["mentees"])
        auto = [r for r in rows if r.source == "auto"]
        assert [(r.mentee_id, r.mentor_id) for r in auto] == [(better.id, go.id)]
        assert auto[0].reasons == proposals[str(better.id)]["reasons"]
        assert auto[0].assigned_by == cohort["director"].id
        assert auto[0].score == pytest.approx(proposals[str(better.id)]["fit"])
        events = await count(system_db, OutboxEvent, OutboxEvent.type == "assignment.created",
                             OutboxEvent.data["assignment_id"].astext == str(auto[0].id))
        assert events == 1

        again = await client.post(url, headers=headers, json={"exclude_mentee_ids": []})
        assert again.status_code == 409 and again.json()["code"] == "already_published"
        read = (await client.get(f"/api/v1/director/matching/runs/{run['job_id']}",
                                 headers=headers)).json()
        assert read["published_count"] == 1 and read["published_by"] == str(
            cohort["director"].id)

    async def test_places_left_count_active_mentees_and_what_publishes_is_complete(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings,
        system_db: Database, cohort: dict[str, Any],
    ) -> None:
        """The set-based publish: a mentor's places less their active mentees (one taken
        meanwhile) go to the best fit; a deactivated mentor's proposal is skipped; the
        assignment comes with its event (as its data model documents, to the pair and the
        directors) and its audit entry."""
        run = await dry_run(client, factory, settings, cohort)
        proposals = {p["mentee_id"]: p for p in run["proposals"]}
        go, design = cohort["mentors"]
        first, second, third, _ = cohort["mentees"]
        await factory.assign(go, await factory.mentee())  # `go` keeps one place of two
        async with system_db.transaction(None) as session:
            await session.execute(text("update users set active = false where id = :id"),
                                  {"id": design.id})
        response = await client.post(
            f"/api/v1/director/matching/runs/{run['job_id']}/publish",
            headers=factory.headers(cohort["director"]), json={})
        assert response.status_code == 200, response.text
        result = response.json()
        better, worse = sorted((first, third), key=lambda m: (-proposals[str(m.id)]["fit"],
                                                              str(m.id)))
        assert result["published"] == 1
        assert result["total_fit"] == pytest.approx(proposals[str(better.id)]["fit"])
        expected = sorted([(worse, "mentor_full"), (second, "not_a_mentor")],
                          key=lambda s: (-proposals[str(s[0].id)]["fit"], str(s[0].id)))
        assert result["skipped"] == [
            {"mentee_id": str(m.id), "mentor_id": proposals[str(m.id)]["mentor_id"],
             "reason": reason} for m, reason in expected]

        [placed] = await assignments_of(system_db, cohort["mentees"])
        assert (placed.mentee_id, placed.mentor_id, placed.source) == (better.id, go.id, "auto")
        async with system_db.transaction(None) as session:
            event = (await session.scalars(select(OutboxEvent).where(
                OutboxEvent.type == "assignment.created",
                OutboxEvent.data["assignment_id"].astext == str(placed.id)))).one()
            audited = await session.scalar(text(
                "select count(*) from audit_log where target_type = 'assignments' "
                "and target_id = :id and actor_id = :director"),
                {"id": str(placed.id), "director": cohort["director"].id})
        data = OUTBOUND_DATA["assignment.created"].model_validate(event.data)
        assert (data.mentee_id, data.mentor_id, data.source, data.previous_mentor_id) == (
            better.id, go.id, "auto", None)
        assert data.reasons == proposals[str(better.id)]["reasons"]
        assert data.started_at == placed.started_at
        assert set(event.recipients) == {better.id, go.id} | await director_ids(system_db)
        assert len(event.recipients) == len(set(event.recipients))
        assert audited == 1

    async def test_excluded_mentees_and_a_new_time_zone_limit_are_skipped(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings,
        system_db: Database, cohort: dict[str, Any],
    ) -> None:
        run = await dry_run(client, factory, settings, cohort)
        first, second = cohort["mentees"][:2]
        # `first` now wants nobody further than 0 h (Berlin / Paris: 0 h apart still
        # holds); `second` (Chicago) now allows 0 h, New York is 1 h away.
        for mentee, hours in ((first, 0), (second, 0)):
            put = await client.put("/api/v1/mentee/preferences", headers=factory.headers(
                mentee), json={"max_timezone_offset_hours": hours})
            assert put.status_code == 200, put.text
        excluded = cohort["mentees"][2]
        response = await client.post(
            f"/api/v1/director/matching/runs/{run['job_id']}/publish",
            headers=factory.headers(cohort["director"]),
            json={"exclude_mentee_ids": [str(excluded.id)]})
        assert response.status_code == 200, response.text
        skipped = {s["mentee_id"]: s["reason"] for s in response.json()["skipped"]}
        assert skipped == {str(excluded.id): "excluded",
                           str(second.id): "max_timezone_offset_hours"}
        placed = {r.mentee_id for r in await assignments_of(system_db, cohort["mentees"])}
        assert placed == {first.id}

    async def test_only_a_finished_dry_run_publishes(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings,
        system_db: Database, cohort: dict[str, Any],
    ) -> None:
        headers = factory.headers(cohort["director"])
        real = await client.post(RUN, headers=headers, json={"mentee_ids": [],
                                                             "mentor_ids": []})
        queued = await client.post(RUN, headers=headers, json={"dry_run": True,
                                                               "mentee_ids": []})
        not_dry = await client.post(f"{real.json()['run_url']}/publish", headers=headers)
        assert not_dry.status_code == 409 and not_dry.json()["code"] == "not_a_dry_run"
        early = await client.post(f"{queued.json()['run_url']}/publish", headers=headers)
        assert early.status_code == 409 and early.json()["code"] == "run_not_finished"
        missing = await client.post(
            f"/api/v1/director/matching/runs/match-{uuid.uuid4()}/publish", headers=headers)
        assert missing.status_code == 404
        bad = await client.post(f"{queued.json()['run_url']}/publish", headers=headers,
                                json={"exclude_mentee_ids": ["x"]})
        assert bad.status_code == 422
        mentee = await client.post(f"{queued.json()['run_url']}/publish",
                                   headers=factory.headers(cohort["mentees"][0]))
        assert mentee.status_code == 403
        await run_burst_worker(settings)
        async with system_db.transaction(None) as session:
            status = await session.scalar(select(MatchingRun.status).where(
                MatchingRun.job_id == queued.json()["job_id"]))
            assert status == "done"
            assert await session.scalar(select(func.count()).select_from(MatchingProposal)
                                        .join(MatchingRun).where(
                MatchingRun.job_id == queued.json()["job_id"])) == 0

    async def test_an_expired_dry_run_reads_without_proposals_and_cannot_publish(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings,
        system_db: Database, cohort: dict[str, Any],
    ) -> None:
        """Retention expires a dry run never published, finished long enough ago: the run
        reads with no proposals and `proposals_expired_at`, its unplaced list intact, and
        publishing it is 409 `proposals_expired`. The later run keeps its proposals."""
        old = await dry_run(client, factory, settings, cohort)
        newer = await dry_run(client, factory, settings, cohort)
        assert old["proposals"] and old["unplaced"] and old["proposals_expired_at"] is None
        now = datetime.now(UTC)
        async with system_db.transaction(None) as session:
            await session.execute(update(MatchingRun).where(
                MatchingRun.job_id == old["job_id"]).values(
                finished_at=now - timedelta(days=settings.retention_matching_dry_runs_days,
                                            minutes=1)))
        removed = await purge_expired(system_db, settings=settings, now=now)
        assert removed["matching_proposals"] >= len(old["proposals"])

        headers = factory.headers(cohort["director"])
        read = await client.get(f"/api/v1/director/matching/runs/{old['job_id']}",
                                headers=headers)
        assert read.status_code == 200, read.text
        expired = read.json()
        assert expired["proposals"] == [] and expired["proposals_next_cursor"] is None
        assert expired["proposals_expired_at"] is not None
        assert (expired["status"], expired["assigned_count"], expired["unplaced"]) == (
            "done", old["assigned_count"], old["unplaced"])
        publish = await client.post(
            f"/api/v1/director/matching/runs/{old['job_id']}/publish", headers=headers)
        assert publish.status_code == 409 and publish.json()["code"] == "proposals_expired"
        assert await assignments_of(system_db, cohort["mentees"]) == []

        kept = await client.get(f"/api/v1/director/matching/runs/{newer['job_id']}",
                                headers=headers)
        assert kept.json()["proposals"] == newer["proposals"]
        assert kept.json()["proposals_expired_at"] is None
