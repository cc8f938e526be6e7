"""Every text the API accepts goes through the one text type (app/core/text.py: no NUL, no
unpaired surrogates, bounded), and every instant through the one bounded datetime type
(app/core/instants.py). Walks every pydantic model of app.schemas, every route's parameters
and the OpenAPI request bodies, so a field or route added later is covered."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, TypeAdapter, ValidationError

import app.schemas
from app.core.instants import BoundedDatetime, check_instant
from app.core.text import OUTPUT_TEXT, SAFE_TEXT, safe_text
from app.main import create_app

# String parameters that are not bound to SQL as text, each checked before use: a cursor is
# verified by its signature (a NUL in one is 422 `invalid_cursor`), a token is a JWT, a
# Last-Event-ID is parsed strictly (anything else: a fresh snapshot).
VERIFIED_PARAMETERS = {"cursor", "access_token", "last_event_id", "last_event_id_query"}


def _schema_models() -> set[type[BaseModel]]:
    models: set[type[BaseModel]] = set()
    for info in pkgutil.iter_modules(app.schemas.__path__):
        module = importlib.import_module(f"app.schemas.{info.name}")
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, BaseModel) and (
                    value.__module__.startswith("app.schemas")):
                models.add(value)
    return models


def _models_in(annotation: Any) -> typing.Iterator[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


def _problems(annotation: Any, metadata: list[Any], *, request: bool) -> list[str]:
    """Why this annotation is not an accepted text / instant type (empty: it is)."""
    if typing.get_origin(annotation) is Annotated:
        inner, *extra = typing.get_args(annotation)
        return _problems(inner, [*metadata, *extra], request=request)
    if annotation is str:
        if any(m is SAFE_TEXT for m in metadata):
            return []
        if any(m is OUTPUT_TEXT for m in metadata):
            return ["OutputText in a request model"] if request else []
        return ["a bare str"]
    if annotation is datetime and request:
        bounded = any(getattr(m, "func", None) is check_instant for m in metadata)
        return [] if bounded else ["a datetime that is not BoundedDatetime"]
    if typing.get_origin(annotation) is Literal:
        return []
    found = []
    for arg in typing.get_args(annotation):
        found += _problems(arg, [], request=request)
    return found


def _request_models(application) -> set[type[BaseModel]]:
    """Models a client sends: the request bodies of every route, and what they nest."""
    roots: set[type[BaseModel]] = set()
    for context in iter_route_contexts(application.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            for param in _all_params(route.dependant, "body_params"):
                roots.update(_models_in(param.field_info.annotation))
    seen: set[type[BaseModel]] = set()
    todo = list(roots)
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for field in model.model_fields.values():
            todo.extend(_models_in(field.annotation))
    return seen


def _all_params(dependant, kind: str) -> list[Any]:
    params = list(getattr(dependant, kind))
    for sub in dependant.dependencies:
        params += _all_params(sub, kind)
    return params


@pytest.fixture(scope="module")
def application(settings):
    return create_app(settings)


def test_no_model_in_app_schemas_has_a_bare_str(application):
    requests = _request_models(application)
    assert len(requests) >= 15, sorted(m.__name__ for m in requests)  # the walk works
    bad = []
    for model in sorted(_schema_models() | requests, key=lambda m: m.__qualname__):
        for name, field in model.model_fields.items():
            for problem in _problems(field.annotation, list(field.metadata),
                                     request=model in requests):
                bad.append(f"{model.__module__}.{model.__qualname__}.{name}: {problem}")
    assert not bad, "use a type of app/schemas/types.py:\n" + "\n".join(bad)


def test_every_request_model_lives_in_app_schemas(application):
    outside = [m for m in _request_models(application)
               if not m.__module__.startswith("app.schemas")]
    assert not outside, outside


def test_every_string_parameter_is_safe_text(application):
    bad = []
    for context in iter_route_contexts(application.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        for kind in ("query_params", "path_params", "header_params", "cookie_params"):
            for param in _all_params(route.dependant, kind):
                if param.name in VERIFIED_PARAMETERS:
                    continue
                for problem in _problems(param.field_info.annotation,
                                         list(param.field_info.metadata), request=True):
                    if not _pattern_refuses_nul(param.field_info.metadata):
                        bad.append(f"{context.path} {param.name}: {problem}")
    assert not bad, bad


def _pattern_refuses_nul(metadata: list[Any]) -> bool:
    patterns = [getattr(m, "pattern", None) for m in metadata]
    return any(p and not re.search(p, "a\x00") and not re.search(p, "\x00") for p in patterns)


def _strings(schema: Any, components: dict[str, Any], seen: set[str]) -> typing.Iterator[tuple]:
    """(path, schema) of every string schema under `schema`, references followed."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                yield from _strings(components[name], components, seen | {name})
            return
        if schema.get("type") == "string":
            yield schema
        for key, value in schema.items():
            if key not in ("examples", "example", "default", "const", "enum"):
                yield from _strings(value, components, seen)
    elif isinstance(schema, list):
        for value in schema:
            yield from _strings(value, components, seen)


def test_every_string_of_every_request_body_is_bounded(application):
    """The OpenAPI view of the same rule: every string a client may send in a body has a
    length limit, a format or a fixed set of values (a bare `str` has none)."""
    openapi = application.openapi()
    components = openapi["components"]["schemas"]
    bad = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                for schema in _strings(media.get("schema"), components, set()):
                    if not ({"maxLength", "enum", "const", "format", "pattern"} & set(schema)):
                        bad.append(f"{method.upper()} {path}: {schema}")
    assert not bad, bad


@pytest.mark.parametrize("value", ["nul\x00byte", "\x00", "lone \ud800 high", "lone \udfff low",
                                   "\udc00\ud800"])
def test_safe_text_refuses_nul_and_lone_surrogates(value):
    with pytest.raises(ValidationError):
        TypeAdapter(safe_text(100)).validate_python(value)


def test_safe_text_keeps_real_text_and_its_limits():
    adapter = TypeAdapter(safe_text(5, min_length=1))
    assert adapter.validate_python("😀 ok") == "😀 ok"  # a paired surrogate is a real char
    for value in ("", "toolong"):
        with pytest.raises(ValidationError):
            adapter.validate_python(value)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                   "9999-12-31T23:00:00-01:00", "2026-01-01T00:00:00"])
def test_bounded_datetime_refuses_what_utc_cannot_hold(value):
    with pytest.raises(ValidationError):
        TypeAdapter(BoundedDatetime).validate_python(value)


def test_bounded_datetime_keeps_the_extremes_utc_can_hold():
    adapter = TypeAdapter(BoundedDatetime)
    for value in ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00-14:00",
                  "9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59+14:00"):
        adapter.validate_python(value)
