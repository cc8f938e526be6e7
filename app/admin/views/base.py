"""What the admin views share: the read-only base and a filter on nullable columns."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqladmin import ModelView
from sqlalchemy import Select
from starlette.requests import Request
from wtforms.validators import StopValidation


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


class ApiRule:
    """A form field validator that checks the value with the API's own schema field, so an
    admin edit obeys the same limits as `PUT /api/v1/users/{id}` (and the same messages)."""

    def __init__(self, schema: type[BaseModel], name: str) -> None:
        field = schema.model_fields[name]
        self.adapter: TypeAdapter[Any] = TypeAdapter(Annotated[field.annotation, field])

    def __call__(self, form: Any, field: Any) -> None:
        try:
            self.adapter.validate_python(field.data)
        except ValidationError as exc:
            raise StopValidation("; ".join(error["msg"] for error in exc.errors())) from None


def api_rules(schema: type[BaseModel], *names: str,
              extra: dict[str, list[Any]] | None = None) -> dict[str, dict[str, list[Any]]]:
    """`form_args` validating each named form field as `schema` does (plus `extra`)."""
    extra = extra or {}
    return {name: {"validators": [*extra.get(name, []), ApiRule(schema, name)]}
            for name in names}
