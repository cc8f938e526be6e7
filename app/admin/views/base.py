"""What the admin views share: the read-only base and a filter on nullable columns."""

from __future__ import annotations

from typing import Any

from sqladmin import ModelView
from sqlalchemy import Select
from starlette.requests import Request


class NullFilter:
    """Filter on whether a nullable column is set (published, ended, resolved, ...)."""

    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"

    def __init__(self, column: Any, title: str) -> None:
        self.column = column
        self.title = title
        self.parameter_name = f"{column.key}_set"

    async def lookups(self, request: Request, model: Any, run_query: Any) -> list[tuple[str, str]]:
        return [("all", "All"), ("yes", "Yes"), ("no", "No")]

    async def get_filtered_query(self, query: Select, value: Any, model: Any) -> Select:
        if value == "yes":
            return query.filter(self.column.is_not(None))
        if value == "no":
            return query.filter(self.column.is_(None))
        return query


def _values(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value.replace("_", " ")) for value in values]


class ReadOnlyView(ModelView):
    can_create = False
    can_edit = False
    can_delete = False
    page_size = 50
    page_size_options = [25, 50, 100, 200]
