"""Which problem `code`s each operation can return, per status, and what each code means.

A route declares the codes of its own logic beside its decorator:

    responses=problems({404: ["not_assigned"], 409: ["double_booking", "capacity_exceeded"]})

The shared layers declare theirs once: a dependency that raises marks itself with
`@declares({...})` (authentication, roles), and the layers every request crosses are added by
what the route has: 413 and 422 with a body, 422 with parameters, 429 unless the rate limiter
exempts the path, 503 `overloaded` unless admission control does. `route_problems` merges
them; app/core/openapi.py turns each status into a `Problem` schema whose `code` is an
enum, with the first code as the example and `CODES`' sentence for each code in the
description. The route's own codes come first, so they give
the example. Tests check the declarations against every code the test suite and the
schemathesis run observe, and against the codes the route's code can raise (tests/contract).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

# code -> when it happens (the responses' descriptions). Every code the service can send
# is here (a test walks the code for them); adding one is a minor change (README).
CODES: dict[str, str] = {
    # shared layers
    "missing_token": "no bearer token was sent",
    "invalid_token": "the token is malformed, badly signed, or its user is unknown, inactive "
                     "or no longer has its role",
    "token_expired": "the token has expired",
    "wrong_role": "the token's role may not use this route",
    "payload_too_large": "the request body exceeds the size limit",
    "validation_error": "the body, path or query does not match the schema or a rule",
    "rate_limited": "too many requests from this caller; see `Retry-After`",
    "service_unavailable": "a dependency (the identity check) is briefly unavailable; "
                           "see `Retry-After`",
    "not_found": "no such resource, or not the caller's to see",
    "conflict": "the change conflicts with an existing record",
    "reference_not_found": "the body refers to a record that does not exist",
    "constraint_violation": "a value breaks a rule of the data",
    "invalid_cursor": "`cursor` is not one this service issued",
    "invalid_transition": "the resource's current status does not allow this change",
    # sessions and scheduling
    "double_booking": "the mentor or the mentee is already booked at that time",
    "capacity_exceeded": "the mentor's capacity (weekly sessions or mentees) is full",
    "outside_availability": "the time is outside the mentor's availability or in time off",
    "notice_too_short": "sooner than the mentor's minimum notice",
    "too_late_to_change": "too close to the session's start to change it",
    "no_mentor": "the mentee has no mentor (any more)",
    "not_assigned": "the mentee is not assigned to the calling mentor",
    "session_not_completed": "feedback is only for completed sessions",
    "feedback_exists": "feedback was already given for this session",
    "video_provider_unavailable": "the video provider could not create the meeting",
    "feed_not_found": "no such calendar feed",
    "transfer_conflict": "the mentee's sessions cannot all move to the new mentor",
    "mentor_not_found": "the caller has no mentor profile",
    "mentee_not_found": "no such mentee (among the caller's)",
    # relationships, matching
    "already_assigned": "the mentee already has a mentor",
    "user_inactive": "the user is deactivated",
    "not_a_mentor": "that user is not a mentor",
    "not_a_mentee": "that user is not a mentee",
    "concurrent_change": "the relationships involved kept changing; retry",
    "matching_in_progress": "a matcher run or another publish holds the matcher; retry",
    "matching_run_not_found": "no matching run with this job id",
    "not_a_dry_run": "only a dry run's proposals can be published",
    "already_published": "this dry run was published already",
    "run_not_finished": "the dry run has not finished",
    "proposals_expired": "the dry run's proposals expired (retention); start a new dry run",
    "invalid_weights": "a weight is unknown, negative or not finite, or all are zero",
    "queue_unavailable": "the job queue (Redis) is unavailable",
    # work queue, events, compliance, live
    "already_reviewed": "the submission was already reviewed",
    "erased": "the user was erased; the id cannot be used again",
    "email_taken": "another user has this email",
    "unknown_mentee": "an event names a mentee this service does not know",
    "batch_too_large": "more events than one request may carry",
    "webhook_url_not_allowed": "the URL is not a public http(s) destination",
    "too_many_streams": "too many open streams (per caller: 429, on this replica: 503)",
    "stream_unavailable": "real-time updates are briefly unavailable",
    "invalid_range": "`from` is after `to`, or the range is too long",
    "not_ready": "a dependency (Postgres, Redis) is unreachable; `failed` names it",
    "overloaded": "the process is at capacity (or had no database connection in time); "
                  "retry after `Retry-After`",
}

# The layers every route crosses (app/core/middleware.py, app/core/ratelimit.py, the
# validation handler in app/core/errors.py).
BODY = {413: ["payload_too_large"], 422: ["validation_error"]}
PARAMETERS = {422: ["validation_error"]}
RATE_LIMITED = {429: ["rate_limited"]}
ADMISSION = {503: ["overloaded"]}
CODES_KEY = "x-problem-codes"  # where `problems()` leaves the codes in `responses=`

Declared = Mapping[int, Iterable[str]]
F = TypeVar("F", bound=Callable[..., Any])


def _checked(declared: Declared) -> dict[int, list[str]]:
    out = {}
    for status, codes in declared.items():
        codes = list(codes)
        unknown = [code for code in codes if code not in CODES]
        if unknown or not 400 <= status < 600:
            raise ValueError(f"undocumented problem codes {unknown} or status {status}")
        out[status] = codes
    return out


def problems(declared: Declared) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries: the problem codes of the route's own logic, by status."""
    return {status: {CODES_KEY: codes} for status, codes in _checked(declared).items()}


def declares(declared: Declared) -> Callable[[F], F]:
    """Marks a dependency with the codes it raises; every route using it inherits them."""
    checked = _checked(declared)

    def mark(function: F) -> F:
        function.__problem_codes__ = checked  # type: ignore[attr-defined]
        return function

    return mark


def _merge(into: dict[int, list[str]], declared: Mapping[int, Iterable[str]]) -> None:
    for status, codes in declared.items():
        known = into.setdefault(status, [])
        known.extend(code for code in codes if code not in known)


def _dependency_calls(route: APIRoute) -> Iterator[Any]:
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop(0)
        yield dependant.call
        pending.extend(dependant.dependencies)


def route_problems(route: APIRoute, rate_exempt: Iterable[str] = (),
                   admission_exempt: Iterable[str] = ()) -> dict[int, list[str]]:
    """Status -> codes the route can return: its own, its dependencies', the layers'."""
    declared: dict[int, list[str]] = {}
    for status, response in route.responses.items():
        if str(status)[:1] in "45" and CODES_KEY not in response:
            raise ValueError(f"{route.operation_id}: declare the codes of {status} with "
                             "`responses=problems({...})`")
        _merge(declared, {int(status): response.get(CODES_KEY, [])})
    for call in _dependency_calls(route):
        _merge(declared, getattr(call, "__problem_codes__", {}))
    if route.body_field is not None:
        _merge(declared, BODY)
    if route.body_field is not None or any(_flat_params(route.dependant)):
        _merge(declared, PARAMETERS)
    if route.path_format not in rate_exempt:
        _merge(declared, RATE_LIMITED)
    if route.path_format not in admission_exempt:
        _merge(declared, ADMISSION)
    return {status: codes for status, codes in sorted(declared.items()) if codes}


def _flat_params(dependant: Any) -> Iterator[Any]:
    pending = [dependant]
    while pending:
        current = pending.pop()
        yield from (current.path_params + current.query_params + current.header_params
                    + current.cookie_params)
        pending.extend(current.dependencies)


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """The app's routes as the OpenAPI document lists them (included routers flattened)."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield route
