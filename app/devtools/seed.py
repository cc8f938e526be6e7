"""Seeding: a realistic, deterministic programme for demos, tests and benchmarks.

`seed(settings, mentors=..., mentees=..., seed=...)` generates every row in memory
(app/devtools/seed_data.py) and bulk-loads them with COPY over one connection of the
workers' role (the system, BYPASSRLS), in a single transaction: the database ends up either
seeded or untouched. It writes into an empty database only (`reset=True` empties it first).
Same seed and same `now`: the same rows, ids included.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from sqlalchemy.engine import make_url

from app.config import Settings
from app.devtools.seed_data import DemoUser, Generator, Table, generate
from app.models import Base

__all__ = ["DatabaseNotEmpty", "DemoUser", "SeedResult", "Table", "demo_users", "generate",
           "is_empty", "refresh_metrics", "reset_database", "seed", "user_by_email"]


class DatabaseNotEmpty(RuntimeError):
    """Seeding writes into an empty database only (use reset to wipe it first)."""


@dataclass
class SeedResult:
    counts: dict[str, int]  # rows per table, in load order
    seconds: float  # wall time: generation and load (overlapped), then ANALYZE
    generate_seconds: float  # spent generating (in a thread, overlapping the load)
    load_seconds: float  # until the load committed
    demo: dict[str, DemoUser]


# --- loading ---------------------------------------------------------------------------------

def plain_dsn(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+asyncpg://...`) as a libpq/asyncpg DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def reset_database(settings: Settings) -> None:
    """Empty every table of the schema. TRUNCATE needs the migration account (the owner):
    the workers' role may only write rows."""
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    connection = await asyncpg.connect(plain_dsn(settings.database_url))
    try:
        await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


async def is_empty(connection: asyncpg.Connection) -> bool:
    return not await connection.fetchval("select exists(select 1 from users)")


async def seed(settings: Settings, *, mentors: int = 20, mentees: int = 300, seed: int = 1,
               work_items_per_mentee: int = 10, sessions_per_mentor: int = 100,
               assigned_fraction: float = 0.85, now: datetime | None = None,
               reset: bool = False, analyze: bool = True) -> SeedResult:
    """Generate and load a programme into an empty database (or, with `reset`, one wiped
    first). Raises DatabaseNotEmpty when users exist and `reset` is false.

    Generation runs in a thread and hands over each table as soon as it is complete, so
    Postgres loads one table while Python builds the next (one transaction throughout)."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    if reset:
        await reset_database(settings)
    generator = Generator(
        settings, mentors=mentors, mentees=mentees, seed=seed,
        work_items_per_mentee=work_items_per_mentee, sessions_per_mentor=sessions_per_mentor,
        assigned_fraction=assigned_fraction, now=now)
    connection = await asyncpg.connect(plain_dsn(settings.worker_db_url))
    try:
        if not await is_empty(connection):
            raise DatabaseNotEmpty(
                "The database already has users; seed writes into an empty database "
                "(use --reset to wipe it first).")
        started = time.perf_counter()
        counts, generate_seconds = await _generate_and_copy(connection, generator)
        loaded = time.perf_counter()
    finally:
        await connection.close()
    if analyze:
        await _analyze(settings, list(counts))
    # The director's first look shows figures, not the nulls of a never-run refresh job.
    await refresh_metrics(settings, now=now)
    return SeedResult(counts=counts, seconds=time.perf_counter() - started,
                      generate_seconds=generate_seconds,
                      load_seconds=loaded - started, demo=generator.demo)


class _Cancelled(Exception):
    pass


async def _generate_and_copy(connection: asyncpg.Connection,
                             generator: Generator) -> tuple[dict[str, int], float]:
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def emit(name: str, table: Table) -> None:  # in the generator's thread
        if stop.is_set():
            raise _Cancelled
        loop.call_soon_threadsafe(ready.put_nowait, (name, table))

    def produce() -> float:
        started = time.perf_counter()
        try:
            generator.stream(emit)
        except _Cancelled:
            pass
        except BaseException as exc:  # handed to the loading side, which re-raises it
            loop.call_soon_threadsafe(ready.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(ready.put_nowait, None)
        return time.perf_counter() - started

    producer = loop.run_in_executor(None, produce)
    counts: dict[str, int] = {}
    try:
        async with connection.transaction():
            while (item := await ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                name, table = item
                if table.rows:
                    await connection.copy_records_to_table(
                        name, records=table.rows, columns=table.columns)
                counts[name] = len(table.rows)
    finally:
        stop.set()
        generate_seconds = await producer
    return counts, generate_seconds


async def _analyze(settings: Settings, names: list[str]) -> None:
    """Fresh planner statistics after a bulk load (ANALYZE needs the tables' owner)."""
    connection = await asyncpg.connect(plain_dsn(settings.database_url))
    try:
        await connection.execute(f"ANALYZE {', '.join(names)}")
    finally:
        await connection.close()


async def refresh_metrics(settings: Settings, *, now: datetime | None = None) -> None:
    """Compute the programme metrics once, as the refresh job does every minute."""
    from app.core.db import Database
    from app.services.ops.metrics import refresh_programme_metrics

    database = Database.connect(settings.worker_db_url, settings, pool_size=1, max_overflow=0)
    try:
        async with database.transaction(None) as session:
            await refresh_programme_metrics(session, now=now or datetime.now(UTC))
    finally:
        await database.dispose()


async def demo_users(settings: Settings) -> dict[str, DemoUser]:
    """One user per role to hand out tokens for: for mentor and mentee an actively assigned
    pair (the first mentor by email), else the first user of the role by email."""
    connection = await asyncpg.connect(plain_dsn(settings.worker_db_url))
    try:
        found: dict[str, DemoUser] = {}
        pair = await connection.fetchrow("""
            select m.id as mentor_id, m.email as mentor_email, m.name as mentor_name,
                   e.id as mentee_id, e.email as mentee_email, e.name as mentee_name
              from assignments a join users m on m.id = a.mentor_id
              join users e on e.id = a.mentee_id
             where a.ended_at is null order by m.email, e.email limit 1""")
        if pair:
            found["mentor"] = DemoUser(pair["mentor_id"], "mentor", pair["mentor_email"],
                                       pair["mentor_name"])
            found["mentee"] = DemoUser(pair["mentee_id"], "mentee", pair["mentee_email"],
                                       pair["mentee_name"])
        for role in ("mentor", "mentee", "director", "admin", "service"):
            if role in found:
                continue
            row = await connection.fetchrow(
                "select id, email, name from users where role = $1 order by email limit 1", role)
            if row:
                found[role] = DemoUser(row["id"], role, row["email"], row["name"])
        return found
    finally:
        await connection.close()


async def user_by_email(settings: Settings, email: str) -> DemoUser | None:
    connection = await asyncpg.connect(plain_dsn(settings.worker_db_url))
    try:
        row = await connection.fetchrow(
            "select id, role, email, name from users where lower(email) = lower($1)", email)
        return DemoUser(row["id"], row["role"], row["email"], row["name"]) if row else None
    finally:
        await connection.close()


async def ensure_service_account(settings: Settings, user_id: uuid.UUID) -> DemoUser:
    """The service account `user_id`, created if missing (`mentorship token --role service`):
    v2 honours a token only for an active user with the token's role, so an integration
    needs a user row of its own. Raises ValueError if the id belongs to someone else."""
    connection = await asyncpg.connect(plain_dsn(settings.worker_db_url))
    try:
        await connection.execute(
            "insert into users (id, email, name, role) values ($1, $2, $3, 'service') "
            "on conflict (id) do nothing",
            user_id, f"service-{user_id}@service.invalid", "Service account")
        row = await connection.fetchrow(
            "select id, role, email, name, active from users where id = $1", user_id)
    finally:
        await connection.close()
    if row["role"] != "service":
        raise ValueError(f"user {user_id} exists and is a {row['role']}, not a service account")
    if not row["active"]:
        raise ValueError(f"service account {user_id} is deactivated")
    return DemoUser(row["id"], row["role"], row["email"], row["name"])
