"""POST /api/v1/director/matching/run and GET /api/v1/director/matching/runs/{job_id}."""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select

from app.config import Settings
from app.core.db import Database
from app.models import MatchingRun
from tests.support.factories import Factory
from tests.support.live import ROOT
from tests.support.worker_helpers import run_burst_worker

RUN = "/api/v1/director/matching/run"


class TestMatchingRoutes:
    async def test_run_is_accepted_then_readable_with_its_result(
        self, client: httpx.AsyncClient, factory: Factory, settings: Settings
    ) -> None:
        director = await factory.user("director")
        mentor = await factory.mentor(mentor_specialties=["go"], mentor_max_mentees=2)
        mentees = [await factory.mentee(interests=["go"]) for _ in range(3)]
        body = {"mentee_ids": [str(m.id) for m in mentees], "mentor_ids": [str(mentor.id)]}

        response = await client.post(RUN, json=body, headers=factory.headers(director))
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["status"] == "queued"
        assert accepted["run_url"] == f"/api/v1/director/matching/runs/{accepted['job_id']}"
        assert response.headers["location"] == accepted["run_url"]

        queued = await client.get(accepted["run_url"], headers=factory.headers(director))
        assert queued.status_code == 200
        assert queued.json()["status"] == "queued"
        assert queued.json()["requested_by"] == str(director.id)

        await run_burst_worker(settings)

        result = (await client.get(accepted["run_url"], headers=factory.headers(director))).json()
        assert result["status"] == "done"
        assert (result["assigned_count"], result["unplaced_count"]) == (2, 1)
        assert result["total_fit"] > 0
        assert result["duration_ms"] >= result["solver_ms"] >= 0
        (left_out,) = result["unplaced"]
        assert left_out["reason"] == "no_capacity"
        assert left_out["mentee_id"] in body["mentee_ids"]
        assert result["requested_by"] == str(director.id)

    async def test_admin_may_run_too(self, client: httpx.AsyncClient, factory: Factory,
                                     settings: Settings) -> None:
        admin = await factory.user("admin")
        response = await client.post(
            RUN, json={"mentee_ids": [], "mentor_ids": []}, headers=factory.headers(admin))
        assert response.status_code == 202
        await run_burst_worker(settings)
        result = await client.get(response.json()["run_url"], headers=factory.headers(admin))
        assert result.json()["status"] == "done" and result.json()["assigned_count"] == 0

    async def test_queue_down_is_503_and_records_nothing(
        self, app, client: httpx.AsyncClient, factory: Factory, system_db: Database
    ) -> None:
        director = await factory.user("director")
        healthy = app.state.shared.redis
        app.state.shared.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        try:
            response = await client.post(RUN, json={"mentee_ids": []},
                                         headers=factory.headers(director))
        finally:
            await app.state.shared.redis.aclose()
            app.state.shared.redis = healthy
        assert response.status_code == 503
        assert response.json()["code"] == "queue_unavailable"
        async with system_db.transaction(None) as session:
            runs = await session.scalar(select(func.count()).select_from(MatchingRun).where(
                MatchingRun.requested_by == director.id))
        assert runs == 0  # the run row was rolled back with the request

    async def test_mentors_are_forbidden(self, client: httpx.AsyncClient,
                                         factory: Factory) -> None:
        mentor = await factory.mentor()
        assert (await client.post(RUN, headers=factory.headers(mentor))).status_code == 403
        read = await client.get("/api/v1/director/matching/runs/match-x",
                                headers=factory.headers(mentor))
        assert read.status_code == 403

    async def test_unknown_job_id_is_404(self, client: httpx.AsyncClient,
                                         factory: Factory) -> None:
        director = await factory.user("director")
        response = await client.get(f"/api/v1/director/matching/runs/match-{uuid.uuid4()}",
                                    headers=factory.headers(director))
        assert response.status_code == 404
        assert response.json()["code"] == "matching_run_not_found"

    async def test_invalid_scope_is_422(self, client: httpx.AsyncClient,
                                        factory: Factory) -> None:
        director = await factory.user("director")
        response = await client.post(RUN, json={"mentee_ids": ["nope"]},
                                     headers=factory.headers(director))
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")


def test_the_api_process_does_not_load_the_solver(settings):  # its keys: fails closed
    """NumPy and OR-Tools cost an API process about 35 MiB of RSS for nothing: only the
    workers run the matcher (app/services/matching/engine.py); the routes use matching_runs."""
    script = ("import sys\nfrom app.main import create_app\ncreate_app()\n"
              "print(sorted({'numpy', 'ortools', 'scipy'} & set(sys.modules)))\n")
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    assert loaded == "[]"
