"""The demo programme reads like a real one: `mentorship dev`'s default programme (20
mentors, 300 mentees) has 10-20 % of its mentees at risk, for every one of the six reasons
(app/services/risk, SQL `mentee_risk()`), and the director's first look at the programme
metrics shows five figures, not nulls."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.core.auth import mint_token
from app.devtools.migrate import upgrade
from app.devtools.seed import plain_dsn, seed
from app.main import create_app
from tests.support.harness import ServerHarness

REASONS = {"open_flag", "habit_streak_broken", "readiness_drop", "overdue_work",
           "no_show_last_session", "no_recent_session"}
# Two reference times: a Friday afternoon across two DST changes, and a Monday morning.
WHEN = [datetime(2026, 3, 27, 14, 0, tzinfo=UTC), datetime(2026, 11, 30, 8, 0, tzinfo=UTC)]


@pytest.fixture(scope="module")
async def demo_database(servers: ServerHarness) -> AsyncIterator[str]:
    name = f"{servers.name}_demo"
    url = servers.database_url_for(name)
    await asyncio.to_thread(servers.create_database, name)
    try:
        await asyncio.to_thread(upgrade, url, configure_logger=False)
        yield url
    finally:
        await asyncio.to_thread(servers.drop_database, name)


async def risk_reasons(url: str, now: datetime) -> list[list[str]]:
    connection = await asyncpg.connect(plain_dsn(url))
    try:
        rows = await connection.fetch("""
            select r.reasons from mentee_risk(
              array(select id from users where role = 'mentee'), $1) r""", now)
    finally:
        await connection.close()
    return [list(row["reasons"]) for row in rows]


@pytest.mark.parametrize("now", WHEN, ids=["march", "november"])
@pytest.mark.parametrize("demo_seed", [1, 2])
async def test_the_demo_programme_has_a_plausible_at_risk_share_with_every_reason(
    demo_database: str, servers: ServerHarness, now: datetime, demo_seed: int
) -> None:
    settings = Settings(database_url=demo_database, redis_url=servers.redis_url)
    await seed(settings, mentors=20, mentees=300, seed=demo_seed, now=now, reset=True,
               analyze=False)
    reasons = await risk_reasons(demo_database, now)
    assert len(reasons) == 300
    at_risk = [r for r in reasons if r]
    share = len(at_risk) / len(reasons)
    counts = Counter(reason for r in at_risk for reason in r)
    assert 0.10 <= share <= 0.20, (share, counts)
    assert set(counts) == REASONS, counts
    assert max(counts.values()) <= 0.4 * len(at_risk), counts  # no single reason dominates


async def test_the_directors_first_look_at_the_metrics_has_figures(
    demo_database: str, servers: ServerHarness
) -> None:
    """Right after seeding (as `mentorship dev` does on a first run), before any worker ran
    the refresh job: every programme metric has a value and a verdict."""
    settings = Settings(database_url=demo_database, redis_url=servers.redis_url,
                        redis_prefix=f"{servers.prefix}demo:", environment="test")
    result = await seed(settings, mentors=20, mentees=300, seed=1, reset=True, analyze=False)
    director = result.demo["director"]
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
            token = mint_token(director.id, "director", settings)
            response = await http.get("/api/v1/director/metrics",
                                      headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    metrics = {m["name"]: m for m in response.json()["metrics"]}
    assert len(metrics) == 5
    for name, metric in metrics.items():
        assert metric["value"] is not None and metric["met"] is not None, name
        assert metric["computed_at"] is not None, name
