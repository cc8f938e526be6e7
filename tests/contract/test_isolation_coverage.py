"""The isolation matrices cannot rot: every route that names an object (a path parameter,
or a `*_id` / `*_ids` field in its query or body, i.e. a way to reach someone else's row) is
in one of the matrices, or in the short list of exceptions below with the reason why.

A matrix names what it covers in `COVERS` ("METHOD /path/{template}"); each of its cells
checks with `tests.support.isolation.assert_hits` that the call is that operation.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
MATRICES = (
    "workqueue/test_workspace_isolation.py",
    "dashboard/test_mentees.py",
    "sessions/test_scheduling_isolation.py",
    "admin/test_staff_isolation.py",
)
# Named like ids but not anyone's object.
NOT_OBJECTS = {
    "last_event_id",  # an SSE resume cursor (the stream's own event ids)
}
EXCEPTIONS = {
    # Its ids are the scope of a matcher run over people a director already sees; every
    # call enqueues a real job, which later tests' workers would run. Its refusals:
    # tests/matching/test_matching_routes.py::test_mentors_are_forbidden.
    "POST /api/v1/director/matching/run": "enqueues a job; staff-only scope",
}


def _module(relative: str):
    """A matrix module, loaded under a private name (pytest imports it under its own)."""
    path = TESTS / relative
    name = f"isolation_matrix_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _fields(schema: dict, components: dict, seen: frozenset = frozenset()) -> set[str]:
    """Every property name in a JSON schema, through `$ref`s, `allOf`/`anyOf`, items."""
    names: set[str] = set()
    if isinstance(schema, list):
        for item in schema:
            names |= _fields(item, components, seen)
        return names
    if not isinstance(schema, dict):
        return names
    ref = schema.get("$ref")
    if ref and ref not in seen:
        names |= _fields(components[ref.rsplit("/", 1)[-1]], components, seen | {ref})
    for key, value in schema.items():
        if key == "properties":
            names |= set(value)
            for item in value.values():
                names |= _fields(item, components, seen)
        elif isinstance(value, dict | list):
            names |= _fields(value, components, seen)
    return names


def _names_an_object(operation: dict, components: dict) -> set[str]:
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
    names |= {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
              and p["name"].endswith(("_id", "_ids"))}
    names |= {name for name in _fields(operation.get("requestBody", {}), components)
              if name.endswith(("_id", "_ids"))}
    return names - NOT_OBJECTS


def test_every_route_that_names_an_object_is_in_an_isolation_matrix(app):
    schema = app.openapi()
    components = schema.get("components", {}).get("schemas", {})
    operations = {f"{method.upper()} {path}": operation
                  for path, item in schema["paths"].items()
                  for method, operation in item.items()}
    covered: dict[str, list[str]] = {}
    for relative in MATRICES:
        for name in _module(relative).COVERS:
            covered.setdefault(name, []).append(relative)
    # A matrix or an exception naming a route that no longer exists is rot too.
    assert not set(covered) - set(operations), set(covered) - set(operations)
    assert not set(EXCEPTIONS) - set(operations), set(EXCEPTIONS) - set(operations)
    assert not set(EXCEPTIONS) & set(covered), "an exception that a matrix covers"

    needing = {name: fields for name, operation in operations.items()
               if (fields := _names_an_object(operation, components))}
    missing = sorted(f"{name} (names {', '.join(sorted(fields))})"
                     for name, fields in needing.items()
                     if name not in covered and name not in EXCEPTIONS)
    assert not missing, ("routes in no isolation matrix (add them to one, e.g. "
                         "tests/sessions/test_scheduling_isolation.py):\n" + "\n".join(missing))
    assert set(EXCEPTIONS) <= set(needing), "an exception no longer needed"
    # The guard itself sees the routes it is meant to see.
    assert {"PATCH /api/v1/mentee/sessions/{session_id}",
            "DELETE /api/v1/mentor/time-off/{time_off_id}",
            "GET /api/v1/calendar/feeds/{token}.ics",
            "POST /api/v1/mentor/sessions"} <= set(needing)
