"""Shared by the isolation matrices and their completeness guard
(tests/contract/test_isolation_coverage.py).

Each matrix module names the operations it covers in `COVERS` ("METHOD /path/{template}", as
in the OpenAPI document); every cell checks with `assert_hits` that the request it sent is
really that operation, so a matrix cannot claim a route it never calls.
"""

from __future__ import annotations

import re

import httpx
import pytest


def template_pattern(path: str) -> re.Pattern[str]:
    """`/a/{x}/b/{y}.ics` -> a regex matching any concrete path of that template."""
    parts = re.split(r"\{[^}/]+\}", path)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


def assert_hits(operation: str, response: httpx.Response) -> None:
    method, path = operation.split(" ", 1)
    request = response.request
    assert request.method == method, (operation, request.method)
    assert template_pattern(path).fullmatch(request.url.path), (operation, request.url.path)


def matrix_cells(routes: dict, callers: tuple[str, ...], owners: tuple[str, ...]) -> list:
    """One cell per route x caller x owner, as pytest params `(route, caller, owner)`: a
    route whose object has no owner (`owned` false) is called once, with owner "a"."""
    return [pytest.param(name, caller, owner, id=f"{name}-{caller}-{owner}")
            for name, route in routes.items() for caller in callers
            for owner in (owners if route.owned else ("a",))]
