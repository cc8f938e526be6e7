"""Regression tests for the bad-input findings of the security review (issue 16, F4): NUL
bytes and lone surrogates in every text field, instants that overflow once converted to UTC,
forged cursors on every list route, a NUL in a path id. Each is a problem JSON with a stable
`code` (422), never a 5xx, and writes nothing.

Routes and fields are enumerated from the app (its request models, its OpenAPI), so a text
field, a date-time parameter or a list route added later is covered or fails here."""

from __future__ import annotations

import base64
import json
import typing
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import text

from app.core import pagination
from app.models import MatchingRun, WebhookEndpoint
from app.models.base import Base
from tests.core.test_text_types import _request_models

NUL, SURROGATE = "nul \x00 byte", "lone \ud800 surrogate"
ROLE_BY_PREFIX = {"/api/v1/mentor/": "mentor", "/api/v1/mentee/": "mentee",
                  "/api/v1/director/": "director", "/api/v1/admin/": "admin"}
NOW = datetime.now(UTC).replace(microsecond=0)
SOON, LATER = (NOW + timedelta(days=3)).isoformat(), (NOW + timedelta(days=4)).isoformat()


def _json(body: Any) -> dict[str, Any]:
    # Lone surrogates only travel as JSON escapes (\ud800): what a hostile client sends.
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}


def _event(kind: str, data: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": kind, "occurred_at": SOON, "data": data,
            **envelope}


def _user(**fields: Any) -> dict[str, Any]:
    return {"email": f"u{uuid.uuid4().hex[:8]}@example.test", "name": "Ada", "role": "mentor",
            **fields}


def _availability(**fields: Any) -> dict[str, Any]:
    window = {"weekday": 0, "start": "09:00", "end": "12:00"}
    return {"timezone": "Europe/London", "windows": [{**window, **fields.pop("window", {})}],
            **fields}


def _profile(**fields: Any) -> dict[str, Any]:
    return {"mentor_capacity_weekly": 5, "mentor_max_mentees": 5, "mentor_specialties": [],
            "mentor_availability": _availability(), **fields}


def _mission(**data: Any) -> dict[str, Any]:
    return {"submission_id": str(uuid.uuid4()), "mentee_id": str(uuid.uuid4()),
            "mission_id": str(uuid.uuid4()), "title": "Mission", "submitted_at": SOON, **data}


ANY = "00000000-0000-4000-8000-000000000001"  # the body is refused before the id is looked up
# (model.field, method, path, role, body with the text value `v`): every text field of every
# request model; test_every_text_field_is_covered keeps the list complete.
TEXT_CASES: list[tuple[str, str, str, str, Any]] = [
    ("FlagCreate.category", "POST", "/api/v1/mentor/flags", "mentor",
     lambda v: {"mentee_id": ANY, "severity": "high", "category": v}),
    ("FlagCreate.note", "POST", "/api/v1/mentor/flags", "mentor",
     lambda v: {"mentee_id": ANY, "severity": "high", "category": "x", "note": v}),
    ("FlagUpdate.resolution", "PATCH", f"/api/v1/mentor/flags/{ANY}", "mentor",
     lambda v: {"status": "resolved", "resolution": v}),
    ("DirectorFlagUpdate.resolution", "PATCH", f"/api/v1/director/flags/{ANY}", "director",
     lambda v: {"status": "escalated", "resolution": v}),
    ("WorkItemUpdate.note", "PATCH", f"/api/v1/mentor/workqueue/{ANY}", "mentor",
     lambda v: {"status": "done", "note": v}),
    ("MissionReviewCreate.feedback", "POST", f"/api/v1/mentor/missions/{ANY}/review", "mentor",
     lambda v: {"decision": "approved", "feedback": v}),
    ("SessionCreate.agenda", "POST", "/api/v1/mentor/sessions", "mentor",
     lambda v: {"mentee_id": ANY, "starts_at": SOON, "duration_minutes": 60, "agenda": v}),
    ("SessionUpdate.reason", "PATCH", f"/api/v1/mentor/sessions/{ANY}", "mentor",
     lambda v: {"status": "cancelled", "reason": v}),
    ("SessionUpdate.mentor_notes", "PATCH", f"/api/v1/mentor/sessions/{ANY}", "mentor",
     lambda v: {"status": "completed", "mentor_notes": v}),
    ("MenteeSessionCreate.agenda", "POST", "/api/v1/mentee/sessions", "mentee",
     lambda v: {"starts_at": SOON, "duration_minutes": 60, "agenda": v}),
    ("MenteeSessionUpdate.reason", "PATCH", f"/api/v1/mentee/sessions/{ANY}", "mentee",
     lambda v: {"status": "cancelled", "reason": v}),
    ("FeedbackCreate.comment", "POST", f"/api/v1/mentee/sessions/{ANY}/feedback", "mentee",
     lambda v: {"rating": 5, "comment": v}),
    ("TimeOffCreate.reason", "POST", "/api/v1/mentor/time-off", "mentor",
     lambda v: {"starts_at": SOON, "ends_at": LATER, "reason": v}),
    ("MentorProfileUpdate.mentor_specialties", "PUT", "/api/v1/mentor/profile", "mentor",
     lambda v: _profile(mentor_specialties=[v])),
    ("MentorProfileUpdate.languages", "PUT", "/api/v1/mentor/profile", "mentor",
     lambda v: _profile(languages=[v])),
    ("Availability.timezone", "PUT", "/api/v1/mentor/profile", "mentor",
     lambda v: _profile(mentor_availability=_availability(timezone=v))),
    ("AvailabilityWindow.start", "PUT", "/api/v1/mentor/profile", "mentor",
     lambda v: _profile(mentor_availability=_availability(window={"start": v}))),
    ("AvailabilityWindow.end", "PUT", "/api/v1/mentor/profile", "mentor",
     lambda v: _profile(mentor_availability=_availability(window={"end": v}))),
    ("MenteePreferences.specialties", "PUT", "/api/v1/mentee/preferences", "mentee",
     lambda v: {"specialties": [v]}),
    ("MenteePreferences.languages", "PUT", "/api/v1/mentee/preferences", "mentee",
     lambda v: {"languages": [v]}),
    ("AssignmentEnd.reason", "POST", f"/api/v1/director/assignments/{ANY}/end", "director",
     lambda v: {"reason": v}),
    ("WebhookCreate.event_types", "POST", "/api/v1/admin/webhooks", "admin",
     lambda v: {"url": "https://hooks.example.com/in", "event_types": [v]}),
    ("WebhookCreate.description", "POST", "/api/v1/admin/webhooks", "admin",
     lambda v: {"url": "https://hooks.example.com/in", "description": v}),
    *[(f"UserUpsert.{name}", "PUT", f"/api/v1/users/{uuid.uuid4()}", "service",
       lambda v, name=name, wrap=wrap: _user(**{name: wrap(v)}))
      for name, wrap in (("name", str), ("timezone", str), ("tier", str),
                         ("interests", lambda v: [v]), ("mentor_specialties", lambda v: [v]),
                         ("languages", lambda v: [v]))],
    *[(f"UserUpsertData.{name}", "POST", "/api/v1/events", "service",
       lambda v, name=name, wrap=wrap: _event(
           "user.upserted", {"id": str(uuid.uuid4()), **_user(**{name: wrap(v)})}))
      for name, wrap in (("name", str), ("timezone", str), ("tier", str),
                         ("interests", lambda v: [v]), ("mentor_specialties", lambda v: [v]),
                         ("languages", lambda v: [v]))],
    ("UserUpserted.source", "POST", "/api/v1/events", "service",
     lambda v: _event("user.upserted", {"id": str(uuid.uuid4()), **_user()}, source=v)),
    ("MissionSubmitted.source", "POST", "/api/v1/events", "service",
     lambda v: _event("mission.submitted", _mission(), source=v)),
    ("MissionSubmittedData.title", "POST", "/api/v1/events", "service",
     lambda v: _event("mission.submitted", _mission(title=v))),
    ("HabitStreakBroken.source", "POST", "/api/v1/events", "service",
     lambda v: _event("habit.streak_broken", {"mentee_id": ANY, "habit": "x", "streak_days": 3},
                      source=v)),
    ("HabitStreakBrokenData.habit", "POST", "/api/v1/events", "service",
     lambda v: _event("habit.streak_broken", {"mentee_id": ANY, "habit": v, "streak_days": 3})),
    ("GoalOverdue.source", "POST", "/api/v1/events", "service",
     lambda v: _event("goal.overdue", {"mentee_id": ANY, "goal_id": ANY, "title": "x",
                                       "due_at": SOON}, source=v)),
    ("GoalOverdueData.title", "POST", "/api/v1/events", "service",
     lambda v: _event("goal.overdue", {"mentee_id": ANY, "goal_id": ANY, "title": v,
                                       "due_at": SOON})),
    ("ReadinessUpdated.source", "POST", "/api/v1/events", "service",
     lambda v: _event("readiness.updated", {"mentee_id": ANY, "score": 50}, source=v)),
]


async def _fingerprint(system_db) -> list[Any]:
    """Row counts of every table and the latest update of the mutable ones."""
    counts = " , ".join(f"(select count(*) from {table})"
                        for table in sorted(Base.metadata.tables))
    async with system_db.transaction(None) as session:
        row = (await session.execute(text(
            f"select {counts}, (select max(updated_at) from users),"
            " (select max(updated_at) from sessions)"))).one()
    return list(row)


def _assert_problem(response, status: int = 422, code: str | None = "validation_error") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"], body
    if code:
        assert body["code"] == code, body


def _text_fields() -> set[str]:
    from app.main import create_app
    fields = set()
    for model in _request_models(create_app()):
        for name, field in model.model_fields.items():
            if _has_str(field.annotation):
                fields.add(f"{model.__name__}.{name}")
    return fields


def _has_str(annotation: Any) -> bool:
    return annotation is str or any(_has_str(a) for a in typing.get_args(annotation))


def test_every_text_field_is_covered(settings):
    missing = _text_fields() - {case[0] for case in TEXT_CASES}
    assert not missing, f"add a case to TEXT_CASES for: {sorted(missing)}"


@pytest.mark.parametrize(("field", "method", "path", "role", "body"), TEXT_CASES,
                         ids=[case[0] for case in TEXT_CASES])
async def test_nul_and_lone_surrogates_are_422(client, factory, system_db, field, method, path,
                                               role, body):
    headers = await factory.role_headers(role)
    before = await _fingerprint(system_db)
    for value in (NUL, SURROGATE, "\x00", "\udfff"):
        request = _json(body(value))
        response = await client.request(method, path, content=request["content"],
                                        headers={**headers, **request["headers"]})
        _assert_problem(response)
    assert await _fingerprint(system_db) == before


# --- instants ---------------------------------------------------------------------------------

OVERFLOWING = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
EXTREMES = ("0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00",
            "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59+14:00")


def _datetime_parameters(openapi: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            for param in operation.get("parameters", []):
                schemas = [param["schema"], *param["schema"].get("anyOf", [])]
                if param["in"] == "query" and any(s.get("format") == "date-time"
                                                  for s in schemas):
                    found.append((path, method, param["name"]))
    return found


async def test_instants_out_of_utc_range_are_422_on_every_route(app, client, factory):
    params = _datetime_parameters(app.openapi())
    assert len(params) >= 8, params  # sessions, slots, time off, audit: the walk works
    for path, method, name in params:
        headers = await _role_headers(factory, path)
        url = path.replace("{mentee_id}", ANY)
        for value in OVERFLOWING:
            response = await client.request(method.upper(), url, params={name: value},
                                            headers=headers)
            _assert_problem(response)
        for value in EXTREMES:  # representable: an answer, or a 422, never a 5xx
            response = await client.request(method.upper(), url, params={name: value},
                                            headers=headers)
            assert response.status_code < 500, (path, name, value, response.text)
            if response.status_code >= 400:
                _assert_problem(response, response.status_code, None)


@pytest.mark.parametrize(("method", "path", "role", "body"), [
    ("POST", "/api/v1/mentor/sessions", "mentor",
     lambda v: {"mentee_id": ANY, "starts_at": v, "duration_minutes": 60}),
    ("POST", "/api/v1/mentee/sessions", "mentee",
     lambda v: {"starts_at": v, "duration_minutes": 60}),
    ("PATCH", f"/api/v1/mentee/sessions/{ANY}", "mentee", lambda v: {"starts_at": v}),
    ("PATCH", f"/api/v1/mentor/sessions/{ANY}", "mentor", lambda v: {"starts_at": v}),
    ("POST", "/api/v1/mentor/time-off", "mentor",
     lambda v: {"starts_at": v, "ends_at": "9999-12-31T23:59:59+00:00"}),
    ("POST", "/api/v1/mentor/time-off", "mentor",
     lambda v: {"starts_at": "0001-01-01T00:00:00+00:00", "ends_at": v}),
    ("POST", "/api/v1/events", "service",
     lambda v: _event("goal.overdue", {"mentee_id": ANY, "goal_id": ANY, "title": "x",
                                       "due_at": v})),
])
async def test_instants_out_of_utc_range_in_bodies_are_422(client, factory, system_db, method,
                                                            path, role, body):
    headers = await factory.role_headers(role)
    before = await _fingerprint(system_db)
    for value in OVERFLOWING:
        response = await client.request(method, path, json=body(value), headers=headers)
        _assert_problem(response)
    assert await _fingerprint(system_db) == before


# --- cursors ----------------------------------------------------------------------------------

async def _role_headers(factory, path: str) -> dict[str, str]:
    role = next((r for prefix, r in ROLE_BY_PREFIX.items() if path.startswith(prefix)), None)
    assert role, f"no role known for {path}: extend ROLE_BY_PREFIX"
    return await factory.role_headers(role)


@pytest.fixture
async def path_ids(factory) -> dict[str, str]:
    """A real row for each path parameter of a list route (else the route answers 404
    before it reads the cursor)."""
    mentee = await factory.mentee()
    endpoint = WebhookEndpoint(url="https://hooks.example.com/in", secret="whsec_x")
    run = MatchingRun(job_id=f"bad-input-{uuid.uuid4()}", status="done", dry_run=True)
    await factory.add(endpoint, run)
    return {"mentee_id": str(mentee.id), "endpoint_id": str(endpoint.id), "job_id": run.job_id}


def _list_routes(openapi: dict[str, Any]) -> list[str]:
    return [path for path, item in openapi["paths"].items()
            if any(p["name"] == "cursor" for p in item.get("get", {}).get("parameters", []))]


def _url(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no row for a path parameter of {path}: extend path_ids"
    return path


def _unsigned(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def _valid_values(keyset: pagination.Keyset) -> list[Any]:
    """A value each position of the keyset accepts (JSON form)."""
    candidates = [datetime.now(UTC).isoformat(), str(uuid.uuid4()), 1, 0.5, "name"]
    values = []
    for kind in keyset.types:
        adapter = TypeAdapter(kind)
        for candidate in candidates:
            try:
                adapter.validate_python(candidate)
            except ValidationError:
                continue
            values.append(candidate)
            break
        else:
            raise AssertionError(f"no sample value for {kind} in {keyset.kind}")
    return values


# A naive instant, one out of UTC's range, NUL, a lone surrogate, null, an overflowing int.
BAD_VALUES = ["2026-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "a\x00b", "\ud800", None,
              2**70]


def _bad_positions(keyset: pagination.Keyset) -> list[list[Any]]:
    """Payloads with one value of the wrong type (each a value that type refuses), and with
    one value too many or too few."""
    good = _valid_values(keyset)
    payloads = [[keyset.kind, *good, good[-1]], [keyset.kind, *good[:-1]]]
    for i, kind in enumerate(keyset.types):
        for bad in BAD_VALUES:
            try:
                TypeAdapter(kind).validate_python(bad)
            except ValidationError:
                payloads.append([keyset.kind, *good[:i], bad, *good[i + 1:]])
    return payloads


FORGED = ["garbage", "!!!", "\x00", "a\x00.b", "", ".", "a.b.c", "=" * 10,
          _unsigned({"s": "2026-01-01T00:00:00", "i": ANY}),  # the old, unsigned format
          _unsigned(["sessions", "2026-01-01T00:00:00+00:00", ANY])]


async def test_forged_cursors_are_422_invalid_cursor_on_every_list_route(app, client, factory,
                                                                          system_db, path_ids):
    """Each list route accepts the cursors of exactly one keyset (so every list route pages
    through app/core/pagination); everything else is 422 `invalid_cursor`."""
    routes = _list_routes(app.openapi())
    assert len(routes) >= 13, routes
    before = await _fingerprint(system_db)
    for path in routes:
        url, headers = _url(path, path_ids), await _role_headers(factory, path)

        async def get(cursor: str, url=url, headers=headers):
            return await client.get(url, params={"cursor": cursor}, headers=headers)

        accepted = []
        for keyset in pagination.KEYSETS.values():
            response = await get(pagination.sign([keyset.kind, *_valid_values(keyset)]))
            if response.status_code == 200:
                accepted.append(keyset)
            else:
                _assert_problem(response, code="invalid_cursor")
        assert len(accepted) == 1, (path, [k.kind for k in accepted])
        [own] = accepted
        genuine = pagination.sign([own.kind, *_valid_values(own)])
        payload, tag = genuine.split(".")
        tampered = [f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{tag}",
                    f"{payload}.{tag[:-1]}", payload, f"{payload}.", f".{tag}",
                    f"{payload}.{base64.urlsafe_b64encode(b'x' * 16).decode().rstrip('=')}"]
        for cursor in [c for c in FORGED if c] + tampered:
            _assert_problem(await get(cursor), code="invalid_cursor")
        for bad in _bad_positions(own):
            _assert_problem(await get(pagination.sign(bad)), code="invalid_cursor")
        # An empty cursor is the first page.
        assert (await get("")).status_code == 200, path
    assert await _fingerprint(system_db) == before


def test_cursors_are_signed_with_the_deployment_key(settings):
    keyset = pagination.KEYSETS["sessions"]
    cursor = keyset.encode(datetime.now(UTC), uuid.uuid4())
    assert keyset.decode(cursor)
    other = settings.model_copy(update={"jwt_secret": "another-secret-" + "x" * 32})
    saved = pagination._key
    try:
        pagination.configure(other)
        with pytest.raises(Exception) as refused:
            keyset.decode(cursor)
        assert getattr(refused.value, "code", None) == "invalid_cursor"
    finally:
        pagination._key = saved
    assert pagination.cursor_key(settings) != settings.jwt_secret.encode()


# --- path ids ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/api/v1/director/matching/runs/%00",
    "/api/v1/director/matching/runs/a%00b",
    "/api/v1/director/matching/runs/%ED%A0%80",  # a surrogate's UTF-8 form: not UTF-8
])
async def test_nul_in_a_run_id_is_4xx(client, factory, path):
    response = await client.get(path, headers=await factory.role_headers("director"))
    assert 400 <= response.status_code < 500, response.text
    _assert_problem(response, response.status_code, None)
    publish = await client.post(f"{path}/publish", json={},
                                headers=await factory.role_headers("director"))
    assert 400 <= publish.status_code < 500, publish.text


async def test_nul_in_query_text_is_422(client, factory):
    admin = await factory.role_headers("admin")
    for params in ({"target_id": "a\x00"}, {"action": "x\x00"}):
        response = await client.get("/api/v1/admin/audit", params=params, headers=admin)
        _assert_problem(response)
    response = await client.get("/api/v1/calendar/feeds/a%00b.ics")
    assert 400 <= response.status_code < 500, response.text


# --- stored bad data --------------------------------------------------------------------------

async def test_a_stored_unknown_time_zone_reads_as_utc(client, factory, system_db):
    """A zone saved before validation existed (or by hand) degrades to UTC in every reader:
    never a 422 or a 500 on a GET."""
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    await factory.session(mentor, mentee)
    async with system_db.transaction(None) as session:
        await session.execute(text(
            "update users set timezone = 'Mars/Base', mentor_availability ="
            " jsonb_set(mentor_availability, '{timezone}', '\"Mars/Base\"')"
            " where id in (:mentor, :mentee)"), {"mentor": mentor.id, "mentee": mentee.id})
    director = await factory.role_headers("director")
    as_mentor, as_mentee = factory.headers(mentor), factory.headers(mentee)
    reads = [
        (as_mentor, "/api/v1/mentor/dashboard"),
        (as_mentor, "/api/v1/mentor/profile"),
        (as_mentor, "/api/v1/mentor/mentees"),
        (as_mentor, f"/api/v1/mentor/mentees/{mentee.id}/cockpit"),
        (as_mentor, f"/api/v1/mentor/mentees/{mentee.id}/slots"),
        (as_mentor, "/api/v1/mentor/sessions"),
        (as_mentor, "/api/v1/mentor/workqueue"),
        (as_mentor, "/api/v1/mentor/time-off"),
        (as_mentee, "/api/v1/mentee/me"),
        (as_mentee, "/api/v1/mentee/slots"),
        (as_mentee, "/api/v1/mentee/sessions"),
        (director, "/api/v1/director/mentors"),
        (director, "/api/v1/director/mentors?sort=-load"),
        (director, f"/api/v1/director/mentees/{mentee.id}/cockpit"),
        (director, "/api/v1/director/waiting"),
        (director, "/api/v1/director/metrics"),
    ]
    for headers, url in reads:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code, response.text)
