"""Each operation's documented problem codes (app/core/problems.py) against its code.

The static walk (tests/support/problem_walk.py) finds every code a route's endpoint, its
dependencies and the app functions they reach can raise; each must be declared for that
route and status. What the walk cannot see (methods on objects, codes mapped from
database constraints) is covered by the codes observed in the whole test suite
(tests/support/observed_problems.py, checked at the end of the session) and in the
schemathesis run (tests/contract/test_fuzz.py).
"""

from __future__ import annotations

from app.core.problems import CODES, api_routes
from app.main import create_app
from tests.support.problem_walk import raised_by_route

# Reachable in the walk but not for this route: shared code with a branch for another role.
UNREACHABLE: dict[str, dict[str, str]] = {
    "book_session": {
        "no_mentor": "for a mentee actor only (booking._missing_for)",
        "notice_too_short": "a mentor's own minimum notice does not bind them",
        "queue_unavailable": "the capacity check is enqueued after the response; a queue "
                             "failure is logged (jobqueue.schedule_capacity_check)"},
    "update_mentor_session": {
        "no_mentor": "for a mentee actor only", "notice_too_short": "as for book_session",
        "queue_unavailable": "as for book_session"},
    "book_mentee_session": {"not_assigned": "for a mentor actor only",
                            "queue_unavailable": "as for book_session"},
    "update_mentee_session": {"not_assigned": "for a mentor actor only",
                              "queue_unavailable": "as for book_session"},
    "list_mentee_slots": {"not_assigned": "free_slots: for a mentor caller only"},
    "list_mentor_slots": {"no_mentor": "free_slots: for a mentee caller only"},
    "create_director_assignment": {
        "notice_too_short": "handover: slot violations are collected into `transfer_conflict`",
        "outside_availability": "as notice_too_short",
        "double_booking": "as notice_too_short (the exclusion constraint's own answer is "
                          "`transfer_conflict` too: handover maps it)"},
    "stream_director": {"mentor_not_found": "start_stream builds the mentor dashboard only "
                                            "without a snapshot; this route passes one"},
    "stream_mentee": {"mentor_not_found": "as for stream_director"},
}


def _declared(schema, route):
    operations = schema["paths"][route.path_format]
    out = {}
    for method in route.methods:
        for status, response in operations[method.lower()]["responses"].items():
            media = response.get("content", {}).get("application/problem+json")
            if media:
                out.setdefault(int(status), set()).update(
                    media["schema"]["properties"]["code"]["enum"])
    return out


def test_every_code_a_route_can_raise_is_declared(settings):
    app = create_app(settings)
    schema = app.openapi()
    missing, stale = [], []
    for route in api_routes(app):
        declared = _declared(schema, route)
        unreachable = UNREACHABLE.get(route.operation_id, {})
        for (status, code), where in sorted(raised_by_route(route).items()):
            if code in unreachable:
                if code in declared.get(status, set()):
                    stale.append(f"{route.operation_id}: {code} is declared, not unreachable")
                continue
            if code not in declared.get(status, set()):
                missing.append(f"{route.operation_id} {status} `{code}` (raised in {where})")
    assert not missing, "declare these beside the route:\n" + "\n".join(missing)
    assert not stale, stale
    assert set(UNREACHABLE) <= {route.operation_id for route in api_routes(app)}


def test_the_walk_finds_codes_through_services_and_dependencies(settings):
    """The walk itself: a route's service module, a factory function, the auth layer."""
    app = create_app(settings)
    routes = {route.operation_id: route for route in api_routes(app)}
    book = raised_by_route(routes["book_session"])
    assert {(409, "double_booking"), (409, "capacity_exceeded"), (404, "not_assigned"),
            (401, "token_expired"), (403, "wrong_role")} <= set(book)
    assert (404, "not_found") not in book  # `-> NotFound` annotations raise nothing
    assert (503, "not_ready") in raised_by_route(routes["readyz"])


def test_every_declared_code_is_described(settings):
    schema = create_app(settings).openapi()
    for item in schema["paths"].values():
        for operation in item.values():
            for response in operation["responses"].values():
                media = response.get("content", {}).get("application/problem+json")
                for code in (media or {}).get("schema", {}).get("properties", {}).get(
                        "code", {}).get("enum", []):
                    assert code in CODES
