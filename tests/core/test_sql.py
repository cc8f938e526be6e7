"""app.core.sql.insert: PostgreSQL INSERT ... ON CONFLICT DO NOTHING that SQLAlchemy caches."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine.default import CACHE_HIT, CACHE_MISS, NO_CACHE_KEY

from app.core.sql import insert
from app.models import InboxEvent

INBOX = InboxEvent.__table__


def rows(n: int) -> list[dict]:
    return [{"id": uuid.uuid4(), "type": "test.event", "source": "test",
             "occurred_at": datetime.now(UTC)} for _ in range(n)]


def test_renders_what_the_dialect_insert_renders():
    ours = insert(INBOX).on_conflict_do_nothing(index_elements=["id"]).returning(INBOX.c.id)
    dialect = postgresql.insert(INBOX).on_conflict_do_nothing(index_elements=["id"]) \
        .returning(INBOX.c.id)
    compile_ = lambda s: str(s.compile(dialect=postgresql.dialect()))  # noqa: E731
    assert compile_(ours) == compile_(dialect)
    assert "ON CONFLICT (id) DO NOTHING RETURNING" in compile_(ours)


async def test_compiled_once_then_served_from_the_cache(system_db):
    async with system_db.engine.connect() as connection:
        await connection.execution_options(compiled_cache={})  # empty: the first is a miss

        def statement(target: list[str]):
            return insert(INBOX).on_conflict_do_nothing(index_elements=target) \
                .returning(INBOX.c.id)

        first = await connection.execute(statement(["id"]), rows(2))
        again = await connection.execute(statement(["id"]), rows(2))
        assert (first.context.cache_hit, again.context.cache_hit) == (CACHE_MISS, CACHE_HIT)
        assert len(again.all()) == 2
        # The conflict target is part of the key: another target is not served this SQL.
        other = insert(INBOX).on_conflict_do_nothing(index_elements=["id", "type"])
        assert other._generate_cache_key() != statement(["id"])._generate_cache_key()
        # What this module is for: the dialect's own insert is never cached (SQLAlchemy 2.0).
        uncached = await connection.execute(
            postgresql.insert(INBOX).on_conflict_do_nothing(index_elements=["id"]), rows(1))
        assert uncached.context.cache_hit == NO_CACHE_KEY
        await connection.rollback()


def test_only_column_names_and_no_do_update():
    with pytest.raises(TypeError):
        insert(INBOX).on_conflict_do_nothing(index_elements=[INBOX.c.id])
    with pytest.raises(NotImplementedError):
        insert(INBOX).on_conflict_do_update(index_elements=["id"], set_={"type": "x"})
