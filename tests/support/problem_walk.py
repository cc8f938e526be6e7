"""The problem codes a route's code can raise, found by walking its source.

From the route's endpoint and every dependency, each function of `app.*` it refers to is
parsed (names are resolved in the function's own globals and closure, so `booking.x` is
the function the module really holds) and walked in turn. A call of a `DomainError` class
gives that class's status and the call's literal `code=` (else the class's code); a bare
reference to such a class (`raise DoubleBooking`, a factory returning the class) gives its
own code; a call of `problem(status, code, ...)` with literals gives those. Classes named
in `except` clauses or `isinstance` checks are not raised there and are skipped.

What it cannot see: methods called on objects (`state.video.create_meeting()`), and codes
the error handler maps from database constraints. The observed-codes check covers those.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from fastapi.routing import APIRoute

from app.core.errors import DomainError, problem

Raised = dict[tuple[int, str], str]  # (status, code) -> where ("module.function")


def _source_tree(function: Callable[..., Any]) -> ast.AST | None:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return ast.parse(textwrap.dedent(source))


def _namespace(function: Callable[..., Any]) -> dict[str, Any]:
    names = dict(getattr(function, "__globals__", {}))
    try:
        names.update(inspect.getclosurevars(function).nonlocals)
    except (TypeError, ValueError):
        pass
    return names


def _resolve(node: ast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, names)
        return getattr(owner, node.attr, None) if owner is not None else None
    return None


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """Class references that do not raise: `except X`, `isinstance(x, X)`, annotations."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        targets: list[ast.AST] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            targets.append(node.returns)
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            targets.append(node.annotation)
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            targets.append(node.type)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2):
            targets.append(node.args[1])
        for target in targets:
            skipped.update(id(child) for child in ast.walk(target))
    return skipped


def _is_error_class(value: Any) -> bool:
    return inspect.isclass(value) and issubclass(value, DomainError) and value is not DomainError


def _literal(node: ast.AST | None) -> Any:
    return node.value if isinstance(node, ast.Constant) else None


@cache
def _function_facts(function: Callable[..., Any]) -> tuple[frozenset, tuple]:
    """(raised (status, code) pairs, the app functions it refers to)."""
    tree = _source_tree(function)
    if tree is None:
        return frozenset(), ()
    names, skipped = _namespace(function), _skipped_nodes(tree)
    raised: set[tuple[int, str]] = set()
    called: list[Callable[..., Any]] = []
    handled: set[int] = set()
    for node in ast.walk(tree):
        if id(node) in skipped or id(node) in handled:
            continue
        if isinstance(node, ast.Call):
            target = _resolve(node.func, names)
            keywords = {kw.arg: kw.value for kw in node.keywords}
            if _is_error_class(target):
                handled.update(id(child) for child in ast.walk(node.func))
                code = _literal(keywords.get("code")) or target.code
                raised.add((target.status, code))
            elif target is problem and len(node.args) >= 2:
                status, code = _literal(node.args[0]), _literal(node.args[1])
                if isinstance(status, int) and isinstance(code, str):
                    raised.add((status, code))
            continue
        if isinstance(node, ast.Name | ast.Attribute):
            target = _resolve(node, names)
            if _is_error_class(target):
                raised.add((target.status, target.code))
            elif (inspect.isfunction(target) and target is not function
                  and getattr(target, "__module__", "").startswith("app.")):
                called.append(inspect.unwrap(target))
    return frozenset(raised), tuple(called)


def _dependency_calls(route: APIRoute) -> Iterator[Callable[..., Any]]:
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop(0)
        if inspect.isfunction(dependant.call):
            yield dependant.call
        pending.extend(dependant.dependencies)


def raised_by_route(route: APIRoute) -> Raised:
    """(status, code) -> the first function found raising it, for every code reachable."""
    found: Raised = {}
    seen: set[Callable[..., Any]] = set()
    pending = [route.endpoint, *_dependency_calls(route)]
    while pending:
        function = pending.pop()
        if function in seen:
            continue
        seen.add(function)
        raised, called = _function_facts(function)
        for pair in raised:
            found.setdefault(pair, f"{function.__module__}.{function.__qualname__}")
        pending.extend(called)
    return found
