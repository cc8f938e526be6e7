"""A PostgreSQL INSERT whose compiled SQL SQLAlchemy caches; hot reads on the driver.

`DriverQuery`: a SELECT compiled once by SQLAlchemy (for asyncpg: the SQL it would send) and
run on the request transaction's asyncpg connection, returning asyncpg records. For the
hottest read routes: no ORM, no per-execution statement cache lookup, no greenlet hop and
no result wrapping, the CPU of which was most of such a request's Python (py-spy, issue 23).
Same transaction, same RLS identity, same SQL; json and jsonb come back decoded (the codec
SQLAlchemy's dialect installs on its connections).

SQLAlchemy 2.0's `postgresql.insert()` opts out of the compiled-statement cache
(`inherit_cache = False`, sqlalchemy#10445), so every execution compiles the statement
again: about 11 % of the API process's CPU when other services post single events
(py-spy, bench/RESULTS.md "SSE"). `insert()` here is the same construct with a cache key:
the plain INSERT's, plus an `ON CONFLICT (columns) DO NOTHING` named by column names.
`on_conflict_do_update` is not offered: use `sqlalchemy.dialects.postgresql.insert` for it
(uncached, as before).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.postgresql.dml import OnConflictDoNothing
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import _generative
from sqlalchemy.sql.visitors import InternalTraversal

from app.core.db import driver_connection, driver_error


class _OnConflictDoNothing(OnConflictDoNothing):
    # What the compiler reads, so that two clauses with the same key render the same SQL.
    _traverse_internals = [
        ("constraint_target", InternalTraversal.dp_string),
        ("inferred_target_elements", InternalTraversal.dp_string_list),
        ("inferred_target_whereclause", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, index_elements: Sequence[str]) -> None:
        if not all(isinstance(name, str) for name in index_elements):
            raise TypeError("index_elements must be column names")
        super().__init__(index_elements=list(index_elements))


class Insert(postgresql.Insert):
    inherit_cache = True  # the plain INSERT's cache key, `_post_values_clause` included

    def on_conflict_do_update(self, *args: Any, **kwargs: Any) -> Self:
        raise NotImplementedError("use sqlalchemy.dialects.postgresql.insert for DO UPDATE")

    @_generative
    def on_conflict_do_nothing(self, *, index_elements: Sequence[str]) -> Self:  # type: ignore[override]
        self._post_values_clause = _OnConflictDoNothing(index_elements)
        return self


def insert(table: Any) -> Insert:
    return Insert(table)


_ASYNCPG = asyncpg_dialect()


class DriverQuery:
    """`statement` (a `text()` or Core select without expanding IN parameters) compiled
    once; `fetch` / `fetchrow` bind parameters by name, as `session.execute` does."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_ASYNCPG)
        self.sql = compiled.string
        self.names = tuple(compiled.positiontup or ())  # $1, $2, ...: one per name
        self.defaults = dict(compiled.params)  # literal values bound by the statement
        processors = compiled._bind_processors
        self.processors = {name: processors[name] for name in self.names
                           if processors.get(name) is not None}

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = [params[name] if name in params else self.defaults[name]
                  for name in self.names]
        for index, name in enumerate(self.names):
            if name in self.processors:
                values[index] = self.processors[name](values[index])
        return values

    async def fetch(self, session: AsyncSession, params: Mapping[str, Any]) -> list[Any]:
        driver = await driver_connection(session)
        try:
            return await driver.fetch(self.sql, *self.arguments(params))
        except Exception as error:
            raise driver_error(self.sql, error) from error

    async def fetchrow(self, session: AsyncSession, params: Mapping[str, Any]) -> Any:
        driver = await driver_connection(session)
        try:
            return await driver.fetchrow(self.sql, *self.arguments(params))
        except Exception as error:
            raise driver_error(self.sql, error) from error
