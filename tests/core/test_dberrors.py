"""The one SQLSTATE helper (app/core/dberrors.py) and what the error handler makes of it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.dberrors import db_error_info, sqlstate_of
from app.core.errors import problem_for_db_error


async def _failure(system_db, *statements: str) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught:
        async with system_db.transaction(None) as session:
            for statement in statements:
                await session.execute(text(statement))
    return caught.value


async def test_a_data_exception_is_a_422_validation_error(system_db):
    for statement, sqlstate in (("select 'x'::int", "22P02"), ("select 1 / 0", "22012"),
                                ("select now() at time zone 'Mars/Base'", "22023")):
        error = await _failure(system_db, statement)
        assert sqlstate_of(error) == sqlstate
        assert problem_for_db_error(error) == (422, "validation_error", "Invalid request")


async def test_the_constraint_name_comes_with_the_sqlstate(system_db):
    error = await _failure(
        system_db, "create temp table dberr (a int constraint dberr_a_key unique)",
        "insert into dberr values (1)", "insert into dberr values (1)")
    assert db_error_info(error) == ("23505", "dberr_a_key")
    assert problem_for_db_error(error)[:2] == (409, "conflict")


async def test_other_failures_are_not_mapped(system_db):
    error = await _failure(system_db, "select * from no_such_table")
    assert sqlstate_of(error) == "42P01"
    assert problem_for_db_error(error) is None  # the generic 500 handler takes it
