"""A PostgreSQL INSERT whose compiled SQL SQLAlchemy caches.

SQLAlchemy 2.0's `postgresql.insert()` opts out of the compiled-statement cache
(`inherit_cache = False`, sqlalchemy#10445), so every execution compiles the statement
again: about 11 % of the API process's CPU when other services post single events
(py-spy, bench/RESULTS.md "SSE"). `insert()` here is the same construct with a cache key:
the plain INSERT's, plus an `ON CONFLICT (columns) DO NOTHING` named by column names.
`on_conflict_do_update` is not offered: use `sqlalchemy.dialects.postgresql.insert` for it
(uncached, as before).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.dml import OnConflictDoNothing
from sqlalchemy.sql.base import _generative
from sqlalchemy.sql.visitors import InternalTraversal


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
