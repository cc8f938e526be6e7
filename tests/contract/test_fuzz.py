"""Schemathesis against a live uvicorn: generated requests (valid and invalid) to every
route in the schema, as each role with a real token, must never get a server error, and
every response must be one the schema documents (status, content type, body schema).

Path ids are real rows half of the time (a mentor's own mentee, session, flag, work item,
submission and time off, an assignment, a calendar feed token, a user to provision,
deactivate, export or erase, a webhook endpoint, a dry matching run), and such a case is
sent as the role the route is for (the others' refusals are the isolation matrices'), so
the fuzzing gets past the 403s and 404s into the routes' logic: every route that takes a
path id must get at least one 2xx or 409.

Excluded: the SSE routes `GET /api/v1/mentor/dashboard/stream`, `/director/stream` and
`/mentee/stream` (endless responses, covered by tests/live/; their refusals by the isolation
matrix in tests/workqueue/test_workspace_isolation.py) and `GET /metrics` (Prometheus text,
tested in tests/core/test_telemetry.py; fuzzing it only exercises the exposition format).
`/admin` is not in the schema.

Hostile text: schemathesis's own strings include NUL (`allow_x00`, set explicitly) but never
a lone surrogate (its alphabet leaves out category Cs, which UTF-8 cannot encode). A JSON body
can carry one all the same (`"\ud800"`), so a third of the cases get a NUL or a lone
surrogate spliced into one of their strings (body, or a query value for NUL): the answer
must be a documented 4xx, never a 5xx (the `not_a_server_error` check fails the run).

Size: MAX_EXAMPLES per operation and generation mode, derandomized: the run is the same
every time and stays within a few minutes on two cores.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select, update

from app.core.auth import Principal
from app.models import Assignment, MatchingRun, MissionSubmission, TimeOff, WebhookEndpoint
from app.services.sessions.feeds import issue_feed_token
from app.services.workqueue.items import create_work_item
from tests.support.live import live_server
from tests.support.observed_problems import declared_codes

ROLES = ("mentor", "mentee", "director", "admin", "service")
EXCLUDED = {"GET /api/v1/mentor/dashboard/stream", "GET /api/v1/director/stream",
            "GET /api/v1/mentee/stream", "GET /metrics"}
# Minutes on a loaded machine (about 11 at load average 9 on two cores): above the suite's
# 300 s default, whose timeout would fire inside Hypothesis as a flaky "Inconsistent results".
pytestmark = pytest.mark.timeout(1200)
MAX_EXAMPLES = 80
MINIMUM_CASES = 1000
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

cases: Counter[str] = Counter()
# (method, path template, status, code) of every problem answer: each must be declared.
problems_seen: set[tuple[str, str, int, str]] = set()
statuses: dict[str, Counter[int]] = {}
poisoned: Counter[str] = Counter()
POISONS = ("\x00", "a\x00b", "\ud800", "x\udfff", "\udc00\ud800")


def _string_slots(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every string in a JSON value."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _string_slots(item, (*path, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _string_slots(item, (*path, i))]
    return []


def _splice(value: Any, path: tuple, poison: str) -> Any:
    if not path:
        return value + poison if value else poison
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _splice(value[path[0]], path[1:], poison)
    return copy


def _poison(case, poison: str | None, pick: int) -> bool:
    """Splice `poison` into one of the case's strings (a lone surrogate only into the JSON
    body: a URL cannot carry one). True if it did."""
    if poison is None:
        return False
    body = case.body if isinstance(case.body, dict | list | str) else None
    slots = [("body", p) for p in _string_slots(body)] if body is not None else []
    if "\x00" in poison and not any("\ud800" <= c <= "\udfff" for c in poison):
        slots += [("query", (name,)) for name, value in (case.query or {}).items()
                  if isinstance(value, str)]
    if not slots:
        return False
    where, path = slots[pick % len(slots)]
    if where == "body":
        # Serialized here, ASCII-escaped (`\ud800`), as a hostile client sends it: a str with
        # a lone surrogate cannot pass through schemathesis's own UTF-8 encoding.
        case.body = json.dumps(_splice(case.body, path, poison)).encode()
    else:
        case.query = {**case.query, path[0]: case.query[path[0]] + poison}
    return True


@pytest.fixture(scope="module")
def server(settings):
    # Its own Redis prefix: the jobs it enqueues (matcher runs over every waiting mentee)
    # must not be picked up by later tests' burst workers.
    with live_server({"REDIS_PREFIX": f"{settings.redis_prefix}fuzz:"}) as running:
        yield running


@pytest.fixture(scope="module")
async def world(factory, settings):
    """One user per role, and rows for the mentor's path ids."""
    mentor, (mentee, other) = await factory.mentor_with_mentees(2)
    users = {"mentor": mentor, "mentee": mentee}
    for role in ("director", "admin", "service"):
        users[role] = await factory.user(role)
    # Far enough ahead that the mentee may still move or cancel it.
    session = await factory.session(mentor, mentee,
                                    starts_at=datetime.now(UTC) + timedelta(days=3))
    flag = await factory.flag(mentor, other)
    submission = MissionSubmission(id=uuid.uuid4(), mentee_id=mentee.id,
                                   mission_id=uuid.uuid4(), title="Mission",
                                   submitted_at=datetime.now(UTC))
    await factory.add(submission)
    item_id = await factory.run(create_work_item, settings=settings, kind="mission_review",
                                mentee_id=mentee.id, source_key=f"fuzz:{uuid.uuid4()}",
                                title="Review the mission")
    assignment_id = await factory.run(lambda s: s.scalar(select(Assignment.id).where(
        Assignment.mentee_id == other.id, Assignment.ended_at.is_(None))))
    now = datetime.now(UTC)
    time_off = TimeOff(id=uuid.uuid4(), mentor_id=mentor.id, starts_at=now + timedelta(days=9),
                       ends_at=now + timedelta(days=10), reason="Fuzz")
    endpoint = WebhookEndpoint(id=uuid.uuid4(), url="https://hooks.example/fuzz",
                               secret=f"whsec_{uuid.uuid4().hex}")
    run = MatchingRun(job_id=f"match-{uuid.uuid4()}", status="done", dry_run=True,
                      started_at=now, finished_at=now, requested_by=users["director"].id)
    provisioned = await factory.mentee()  # for PUT /users, deactivate, export, erase
    await factory.add(time_off, endpoint, run)
    # A feed of its own: a mentor's POST /calendar/feed-token in the run would rotate theirs.
    feed_owner = await factory.mentor()
    token = await factory.run(issue_feed_token, principal=Principal(feed_owner.id, "mentor"))
    ids = {"mentee_id": mentee.id, "session_id": session.id, "flag_id": flag.id,
           "item_id": item_id, "submission_id": submission.id,
           "assignment_id": assignment_id, "time_off_id": time_off.id, "token": token,
           "endpoint_id": endpoint.id, "job_id": run.job_id, "user_id": provisioned.id}
    tokens = {role: factory.token(user) for role, user in users.items()}
    yield tokens, {name: str(value) for name, value in ids.items()}
    # The database outlives this module: leave no active webhook endpoint (its own, or one
    # a fuzzed POST made), or every later relay pass delivers to it and later tests count
    # deliveries they did not ask for.
    await factory.run(lambda s: s.execute(update(WebhookEndpoint).values(active=False)))


# The role each area's routes are for: a case with real path ids is sent as that role.
OWNER_ROLES = (("/api/v1/mentor/", "mentor"), ("/api/v1/mentee/", "mentee"),
               ("/api/v1/director/", "director"), ("/api/v1/admin/", "admin"),
               ("/api/v1/users/", "service"), ("/api/v1/calendar/", "mentor"))


def _owner_role(path: str) -> str | None:
    return next((role for prefix, role in OWNER_ROLES if path.startswith(prefix)), None)


def _operations(url: str):
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    schema.config.generation.update(allow_x00=True)  # NUL in generated strings (the default)
    for result in schema.get_all_operations():
        operation = result.ok()
        if f"{operation.method.upper()} {operation.path}" not in EXCLUDED:
            yield operation


def _fuzz(operation, mode: GenerationMode, tokens, ids, failures: list[str]) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode),
           role=st.sampled_from(ROLES), real_ids=st.booleans(),
           poison=st.sampled_from((None, None, *POISONS)), pick=st.integers(0, 1000))
    def run(case, role, real_ids, poison, pick):
        if real_ids and case.path_parameters:
            for name in case.path_parameters:
                if name in ids:
                    case.path_parameters[name] = ids[name]
            role = _owner_role(operation.path) or role
        cases[label] += 1
        if _poison(case, poison, pick):
            poisoned[label] += 1
        response = case.call(headers={"Authorization": f"Bearer {tokens[role]}"}, timeout=30)
        statuses.setdefault(label, Counter())[response.status_code] += 1
        if response.status_code >= 400 and response.content.startswith(b"{"):
            problems_seen.add((operation.method.upper(), operation.path,
                               response.status_code, response.json().get("code")))
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation without parameters or body (/healthz): there is
        # nothing to make invalid.
        assert mode is GenerationMode.NEGATIVE and cases[label], label
    except Exception as error:  # noqa: BLE001 - every operation is reported, not the first
        # Hypothesis wraps a flaky failure ("Inconsistent results") in a group: say what
        # failed the first time.
        inner = "".join(f"\n  - {type(e).__name__}: {e}"
                        for e in getattr(error, "exceptions", ()))
        failures.append(f"{label} ({mode.value}): {error}{inner}")


def test_fuzz_every_route_as_every_role(server, world):
    tokens, ids = world
    failures: list[str] = []
    operations = list(_operations(server.url))
    assert len(operations) >= 20
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(operation, mode, tokens, ids, failures)
    total = sum(cases.values())
    print(f"schemathesis: {total} cases over {len(cases)} operations, "
          f"{sum(poisoned.values())} with NUL or a lone surrogate spliced in")
    assert not failures, "\n\n".join(failures)
    schema = httpx.get(f"{server.url}/openapi.json").json()
    undeclared = sorted(f"{method} {path} {status} `{code}`"
                        for method, path, status, code in problems_seen
                        if code not in declared_codes(schema, method, path, status))
    assert not undeclared, "problem codes not declared:\n" + "\n".join(undeclared)
    print(f"schemathesis: {len(problems_seen)} distinct problem answers, all declared")
    assert total >= MINIMUM_CASES, cases
    # A good share of the cases carried hostile text (a third are drawn to, when they can).
    assert sum(poisoned.values()) >= total // 10, poisoned
    assert {f"{op.method.upper()} {op.path}" for op in operations} == set(cases)
    # Every route that takes a path id was reached with a real one and decided on it (a 2xx,
    # or a 409 once an earlier case changed the row: a cancelled session, a resolved flag):
    # the fuzzing got into its logic, not only into the 403s and 404s.
    unreached = sorted(f"{label}: {dict(statuses[label])}" for label in cases
                       if "{" in label
                       and not any(200 <= s < 300 or s == 409 for s in statuses[label]))
    assert not unreached, "never a 2xx or 409:\n" + "\n".join(unreached)
