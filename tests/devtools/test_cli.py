"""The `mentorship` command: token, openapi, migrate and seed (deterministic, and the data
keeps every invariant the database and the domain rules ask for)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import jwt
import pytest
from typer.testing import CliRunner

from app.config import Settings
from app.core.auth import decode_token
from app.devtools.cli import cli
from app.devtools.migrate import upgrade
from app.devtools.seed import DatabaseNotEmpty, generate, plain_dsn, seed
from app.devtools.seed_data import Generator
from tests.support.harness import ROOT, ServerHarness, settings_environment

runner = CliRunner()
NOW = datetime(2026, 3, 27, 14, 0, tzinfo=UTC)  # the weeks around it cross two DST changes
SMALL = {"mentors": 12, "mentees": 150, "seed": 7, "work_items_per_mentee": 6,
         "sessions_per_mentor": 30}


def mentorship(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real command in a subprocess (fresh settings, real entry point)."""
    return subprocess.run([sys.executable, "-m", "app.devtools.cli", *args], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120, check=False)


def environment(env: dict[str, str]):
    """In-process CLI calls with other settings (get_settings() is cached)."""
    return settings_environment(env)


async def run_mentorship(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(mentorship, *args, env=env)


class FreshDatabase:
    """An empty database of its own on the test server, migrated by `mentorship migrate`."""

    def __init__(self, servers: ServerHarness, suffix: str) -> None:
        self.servers = servers
        self.name = f"{servers.name}_{suffix}"
        self.url = servers.database_url_for(self.name)
        self.env = {"DATABASE_URL": self.url}
        self.settings = Settings(database_url=self.url, redis_url=servers.redis_url)

    async def create(self, *, with_cli: bool = False) -> FreshDatabase:
        await asyncio.to_thread(self.servers.create_database, self.name)
        if with_cli:
            result = await run_mentorship("migrate", env=self.env)
            assert result.returncode == 0, result.stderr
        else:
            await asyncio.to_thread(upgrade, self.url, configure_logger=False)
        return self

    async def drop(self) -> None:
        await asyncio.to_thread(self.servers.drop_database, self.name)

    async def fetch(self, sql: str, *args):
        connection = await asyncpg.connect(plain_dsn(self.url))
        try:
            return await connection.fetch(sql, *args)
        finally:
            await connection.close()

    async def fetchval(self, sql: str, *args):
        return (await self.fetch(sql, *args))[0][0]


@pytest.fixture(scope="module")
async def seeded(servers: ServerHarness) -> AsyncIterator[FreshDatabase]:
    database = FreshDatabase(servers, "seeded")
    try:
        await database.create()
        database.result = await seed(database.settings, now=NOW, **SMALL)
        yield database
    finally:
        await database.drop()


class TestToken:
    def test_token_for_a_user_and_role_verifies(self, settings: Settings) -> None:
        user_id = uuid.uuid4()
        result = runner.invoke(cli, ["token", "--user-id", str(user_id), "--role", "director",
                                     "--ttl-hours", "2"])
        assert result.exit_code == 0, result.output
        principal = decode_token(result.output.strip(), settings)
        assert (principal.user_id, principal.role) == (user_id, "director")
        claims = jwt.decode(result.output.strip(), settings.jwt_secret, algorithms=["HS256"])
        assert claims["exp"] - claims["iat"] == 2 * 3600

    def test_token_needs_a_known_role(self) -> None:
        result = runner.invoke(cli, ["token", "--user-id", str(uuid.uuid4()), "--role", "root"])
        assert result.exit_code == 1
        assert "--role must be one of" in result.output

    def test_token_needs_exactly_one_subject(self) -> None:
        result = runner.invoke(cli, ["token", "--role", "mentor"])
        assert result.exit_code == 1

    def test_token_by_email_uses_the_users_role(self, seeded: FreshDatabase) -> None:
        with environment(seeded.env):
            result = runner.invoke(cli, ["token", "--email", "DIRECTOR@example.org"])
            missing = runner.invoke(cli, ["token", "--email", "nobody@example.org"])
        assert result.exit_code == 0, result.output
        principal = decode_token(result.stdout.strip(), seeded.settings)
        assert principal.user_id == seeded.result.demo["director"].id
        assert principal.role == "director"
        assert missing.exit_code == 1 and "no user" in missing.output

    async def test_the_seeds_service_account_is_honoured(self, seeded: FreshDatabase) -> None:
        """v2 honours tokens of active users with that role only: the demo seed's service
        account is one, so `mentorship dev`'s service token keeps working."""
        service = seeded.result.demo["service"]
        rows = await seeded.fetch("select role, active from auth_identity($1)", service.id)
        assert [tuple(r) for r in rows] == [("service", True)]


class TestOpenapi:
    def test_writes_the_apps_schema_as_json(self, tmp_path) -> None:
        target = tmp_path / "openapi.json"
        result = runner.invoke(cli, ["openapi", "--output", str(target)])
        assert result.exit_code == 0, result.output
        schema = json.loads(target.read_text())
        assert schema["openapi"].startswith("3.")
        assert schema["info"]["title"] == "Mentorship Coordination Engine"
        assert "/readyz" in schema["paths"]

    def test_writes_to_stdout_by_default(self) -> None:
        result = runner.invoke(cli, ["openapi"])
        assert json.loads(result.stdout)["paths"]


class TestSeedIsDeterministic:
    def test_same_seed_same_rows_other_seed_other_rows(self, settings: Settings) -> None:
        first, demo = generate(settings, now=NOW, **SMALL)
        second, demo_again = generate(settings, now=NOW, **SMALL)
        assert first == second and demo == demo_again
        other, _ = generate(settings, now=NOW, **{**SMALL, "seed": 8})
        assert other["users"].rows != first["users"].rows

    async def test_cli_seed_then_reseed_gives_identical_tables(
        self, servers: ServerHarness
    ) -> None:
        database = FreshDatabase(servers, "determinism")
        try:
            await database.create(with_cli=True)
            args = ["seed", "--mentors", "6", "--mentees", "60", "--seed", "3",
                    "--work-items-per-mentee", "3", "--sessions-per-mentor", "12",
                    "--now", NOW.isoformat()]
            result = await run_mentorship(*args, env=database.env)
            assert result.returncode == 0, result.stderr
            assert "seeded in" in result.stdout
            before = await self._digest(database)

            with environment(database.env):  # refuses a database with data
                again = await asyncio.to_thread(runner.invoke, cli, args)
            assert again.exit_code == 1 and "--reset" in again.output
            with pytest.raises(DatabaseNotEmpty):
                await seed(database.settings, mentors=6, mentees=60, seed=3, now=NOW)
            assert await self._digest(database) == before

            await seed(database.settings, mentors=6, mentees=60, seed=3,
                       work_items_per_mentee=3, sessions_per_mentor=12, now=NOW, reset=True)
            assert await self._digest(database) == before
        finally:
            await database.drop()

    async def test_seed_asks_for_migrate_on_a_database_without_schema(
        self, servers: ServerHarness
    ) -> None:
        database = FreshDatabase(servers, "noschema")
        await asyncio.to_thread(servers.create_database, database.name)
        try:
            with environment(database.env):
                result = await asyncio.to_thread(runner.invoke, cli, ["seed"])
            assert result.exit_code == 1 and "mentorship migrate" in result.output
        finally:
            await database.drop()

    async def test_a_failure_midway_leaves_the_database_untouched(
        self, servers: ServerHarness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        database = FreshDatabase(servers, "atomic")
        try:
            await database.create()

            def fail(self) -> None:  # after users, assignments and sessions were handed over
                raise RuntimeError("generation failed")

            monkeypatch.setattr(Generator, "flags", fail)
            with pytest.raises(RuntimeError, match="generation failed"):
                await seed(database.settings, mentors=3, mentees=30, seed=1, now=NOW)
            for table in ("users", "assignments", "sessions", "work_items"):
                assert await database.fetchval(f"select count(*) from {table}") == 0
        finally:
            await database.drop()

    @staticmethod
    async def _digest(database: FreshDatabase) -> dict[str, tuple[int, str]]:
        digest = {}
        for table in ("users", "assignments", "sessions", "session_feedback", "work_items",
                      "mission_submissions", "mission_reviews", "flags", "readiness_history",
                      "mentee_signals"):
            digest[table] = tuple(await database.fetch(
                f"select count(*), md5(coalesce(string_agg(t::text, '|' order by t.id), ''))"
                f" from {table} t"))
        assert digest["users"][0][0] > 0
        return digest


class TestSeedInvariants:
    async def test_counts_are_as_asked(self, seeded: FreshDatabase) -> None:
        counts = seeded.result.counts
        n_mentors, n_mentees = SMALL["mentors"], SMALL["mentees"]
        roles = dict(await seeded.fetch("select role, count(*) from users group by role"))
        assert roles == {"mentor": n_mentors, "mentee": n_mentees, "director": 1, "admin": 1,
                         "service": 1}
        assert counts["sessions"] == n_mentors * SMALL["sessions_per_mentor"]
        assert counts["work_items"] == n_mentees * SMALL["work_items_per_mentee"]
        for table, count in counts.items():
            assert await seeded.fetchval(f"select count(*) from {table}") == count
        active = await seeded.fetchval("select count(*) from assignments where ended_at is null")
        assert active == round(n_mentees * 0.85)  # the rest wait for the matcher

    async def test_every_mentor_has_zone_windows_specialties_and_mentees(
        self, seeded: FreshDatabase
    ) -> None:
        rows = await seeded.fetch("""
            select u.timezone, u.mentor_availability, u.mentor_specialties,
                   (select count(*) from assignments a
                     where a.mentor_id = u.id and a.ended_at is null) as mentees
              from users u where u.is_mentor""")
        zones = {row["timezone"] for row in rows}
        assert len(zones) >= 4
        for row in rows:
            availability = json.loads(row["mentor_availability"])
            assert availability["timezone"] == row["timezone"] and availability["windows"]
            assert row["mentor_specialties"] and row["mentees"] >= 1
        tiers = {r[0] for r in await seeded.fetch("select distinct tier from users "
                                                  "where role = 'mentee'")}
        assert tiers <= {str(t) for t in range(1, 8)} and len(tiers) >= 5

    async def test_no_mentor_exceeds_max_mentees(self, seeded: FreshDatabase) -> None:
        assert await seeded.fetchval("""
            select count(*) from users u
             where u.is_mentor and (select count(*) from assignments a
                    where a.mentor_id = u.id and a.ended_at is null) > u.mentor_max_mentees
        """) == 0

    async def test_no_week_exceeds_the_mentors_weekly_capacity(
        self, seeded: FreshDatabase
    ) -> None:
        # ISO weeks in the mentor's own zone, live sessions only
        # (as app/services/mentors/capacity.py).
        assert await seeded.fetchval("""
            select count(*) from (
              select s.mentor_id, u.mentor_capacity_weekly,
                     date_trunc('week', s.starts_at at time zone u.timezone) as week,
                     count(*) as booked
                from sessions s join users u on u.id = s.mentor_id
               where s.status <> 'cancelled'
               group by 1, 2, 3) w
             where booked > mentor_capacity_weekly""") == 0

    async def test_sessions_lie_inside_availability_and_never_overlap(
        self, seeded: FreshDatabase
    ) -> None:
        outside = await seeded.fetchval("""
            select count(*) from sessions s join users u on u.id = s.mentor_id
             where not exists (
               select 1 from jsonb_array_elements(u.mentor_availability->'windows') w
                where (w->>'weekday')::int
                      = extract(isodow from s.starts_at at time zone u.timezone)::int - 1
                  and (s.starts_at at time zone u.timezone)::time >= (w->>'start')::time
                  and (s.ends_at at time zone u.timezone)::time <= (w->>'end')::time
                  and (s.ends_at at time zone u.timezone)::date
                      = (s.starts_at at time zone u.timezone)::date)""")
        assert outside == 0
        for who in ("mentor_id", "mentee_id"):
            assert await seeded.fetchval(f"""
                select count(*) from sessions a join sessions b
                  on a.{who} = b.{who} and a.id < b.id
                 and tstzrange(a.starts_at, a.ends_at, '[)') && tstzrange(b.starts_at, b.ends_at)
                 where a.status <> 'cancelled' and b.status <> 'cancelled'""") == 0

    async def test_sessions_are_with_the_current_mentor_past_and_upcoming(
        self, seeded: FreshDatabase
    ) -> None:
        assert await seeded.fetchval("""
            select count(*) from sessions s where not exists (
              select 1 from assignments a where a.mentee_id = s.mentee_id
                 and a.mentor_id = s.mentor_id and a.ended_at is null
                 and a.started_at <= s.created_at)""") == 0
        statuses = dict(await seeded.fetch(
            "select status, count(*) from sessions group by status"))
        assert set(statuses) == {"scheduled", "completed", "no_show", "cancelled"}
        assert await seeded.fetchval(
            "select count(*) from sessions where status in ('completed', 'no_show') "
            "and ends_at > $1", NOW) == 0
        assert await seeded.fetchval(
            "select count(*) from sessions where status = 'scheduled' and starts_at > $1",
            NOW) > 0
        assert await seeded.fetchval(
            "select count(*) from session_feedback f join sessions s on s.id = f.session_id "
            "where s.status <> 'completed' or f.mentor_id <> s.mentor_id "
            "or f.mentee_id <> s.mentee_id") == 0

    async def test_work_items_of_every_kind_with_sla_due_dates(
        self, seeded: FreshDatabase, settings: Settings
    ) -> None:
        kinds = {r["kind"]: r for r in await seeded.fetch("""
            select kind, count(*) as n, bool_and(due_at > created_at) as due_after,
                   count(*) filter (where overdue) as overdue,
                   count(*) filter (where overdue <> (status <> 'done' and due_at < $1))
                     as wrong,
                   min(extract(epoch from due_at - created_at) / 3600) as min_hours,
                   max(extract(epoch from due_at - created_at) / 3600) as max_hours
              from work_items group by kind""", NOW)}
        assert set(kinds) == {"mission_review", "risk_assessment", "goal_feedback",
                              "session_followup"}
        for kind, row in kinds.items():
            assert row["due_after"] and row["wrong"] == 0
            assert row["min_hours"] == row["max_hours"] == settings.sla(kind).hours
        assert sum(row["overdue"] for row in kinds.values()) > 0
        # Unfinished items past 75 % of their window were escalated once.
        assert await seeded.fetchval("""
            select count(*) from work_items where status <> 'done'
               and $1 >= created_at + (due_at - created_at) * 0.75
               and escalated_at is null""", NOW) == 0
        # Each item has its cause: a submission, a signal or a completed session.
        assert await seeded.fetchval("""
            select count(*) from work_items w where not (
              (kind = 'mission_review' and exists (select 1 from mission_submissions m
                 where m.id = (w.details->>'submission_id')::uuid and m.mentee_id = w.mentee_id))
              or (kind = 'session_followup' and exists (select 1 from sessions s
                 where s.id = (w.details->>'session_id')::uuid and s.status = 'completed'))
              or (kind in ('risk_assessment', 'goal_feedback') and exists (
                 select 1 from mentee_signals g where g.mentee_id = w.mentee_id
                    and w.source_key like '%' || g.event_id::text)))""") == 0
        assert await seeded.fetchval("""
            select count(*) from work_items w join users u on u.id = w.mentee_id
             where w.kind = 'goal_feedback' and u.tier <> all($1::text[])""",
            settings.goal_feedback_tiers) == 0

    async def test_done_items_and_reviews_belong_to_the_mentor(
        self, seeded: FreshDatabase
    ) -> None:
        assert await seeded.fetchval("""
            select count(*) from work_items w
              left join assignments a on a.mentee_id = w.mentee_id and a.ended_at is null
             where w.status = 'done' and (w.completed_by is distinct from a.mentor_id
                   or w.completed_at > $1 or w.completed_at < w.created_at)""", NOW) == 0
        assert await seeded.fetchval("""
            select count(*) from mission_submissions m
              left join mission_reviews r on r.submission_id = m.id
             where (m.status = 'pending') <> (r.id is null)""") == 0

    async def test_flags_readiness_and_staff(self, seeded: FreshDatabase) -> None:
        assert await seeded.fetchval("select count(*) from flags") > 0
        assert await seeded.fetchval("""
            select count(*) from flags f where not exists (select 1 from assignments a
              where a.mentee_id = f.mentee_id and a.mentor_id = f.raised_by)""") == 0
        per_mentee = await seeded.fetch(
            "select count(*) from readiness_history group by mentee_id")
        assert len(per_mentee) == SMALL["mentees"] and {r[0] for r in per_mentee} == {4}
        assert set(seeded.result.demo) == {"mentor", "mentee", "director", "admin", "service"}
        demo = seeded.result.demo
        assert await seeded.fetchval(
            "select count(*) from assignments where mentor_id = $1 and mentee_id = $2 "
            "and ended_at is null", demo["mentor"].id, demo["mentee"].id) == 1
