"""Isolation matrix for the routes that only staff, the service account or an admin may call
and that name someone's object: user provisioning, inbound events, the admin's compliance
routes (audit, export, erase), webhook endpoints, director flag filters and matching runs.

Two mentors A and B, each with a mentee and an open flag (with its private note); a webhook
endpoint and a finished dry matching run. Every route is called by mentor A, mentor B, A's
mentee, B's mentee, a director, an admin and a service account, on A's objects and on B's
(once for objects that are the programme's, not a person's). The status of every cell is
fixed in `ROUTES`: a role the contract does not name gets 403 `wrong_role`, whoever owns the
object, with nothing of anyone in the body and nothing changed in the database.

`POST /api/v1/director/matching/run` is not here: it enqueues a matcher job (see the
exceptions in tests/contract/test_isolation_coverage.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from app.models import Flag, InboxEvent, MatchingRun, User, WebhookEndpoint
from tests.support.events_helpers import mission_submitted
from tests.support.isolation import assert_hits, matrix_cells
from tests.support.workspace_support import body_without_echo

CALLERS = ("mentor_a", "mentor_b", "mentee_a", "mentee_b", "director", "admin", "service")
OWNERS = ("a", "b")


def allowed(*roles: str, status: int) -> dict[str, int]:
    """Every caller's status: `status` for `roles`, 403 for everyone else."""
    return {caller: status if caller.split("_")[0] in roles else 403 for caller in CALLERS}


@dataclass(frozen=True)
class Route:
    operation: str
    table: dict[str, int]
    path: Callable[[dict, str], dict] | None = None
    body: Callable[[dict, str], Any] | None = None
    params: Callable[[dict, str], dict] | None = None
    owned: bool = True  # False: a programme object, called once per caller


ROUTES: dict[str, Route] = {
    "user_upsert": Route(
        "PUT /api/v1/users/{user_id}", allowed("service", "admin", status=200),
        path=lambda w, o: {"user_id": w[o]["mentee"].id},
        # (The factory's `example.test` addresses are not valid email for the API.)
        body=lambda w, o: {"email": f"{w[o]['mentee'].id}@example.com",
                           "name": w[o]["mentee"].name, "role": "mentee", "tier": "isolation"}),
    "inbound_event": Route(
        "POST /api/v1/events", allowed("service", "admin", status=202),
        body=lambda w, o: mission_submitted(w[o]["mentee"].id)),
    "audit_by_target": Route(
        "GET /api/v1/admin/audit", allowed("admin", status=200),
        params=lambda w, o: {"target_id": str(w[o]["mentee"].id)}),
    "user_export": Route(
        "GET /api/v1/admin/users/{user_id}/export", allowed("admin", status=200),
        path=lambda w, o: {"user_id": w[o]["mentee"].id}),
    "user_erase": Route(
        "POST /api/v1/admin/users/{user_id}/erase", allowed("admin", status=200),
        path=lambda w, o: {"user_id": w[o]["mentee"].id}),
    "director_flags_by_mentee": Route(
        "GET /api/v1/director/flags", allowed("director", "admin", status=200),
        params=lambda w, o: {"mentee_id": str(w[o]["mentee"].id)}),
    "webhook_deliveries": Route(
        "GET /api/v1/admin/webhooks/{endpoint_id}/deliveries", allowed("admin", status=200),
        path=lambda w, o: {"endpoint_id": w["endpoint"].id}, owned=False),
    "webhook_delete": Route(
        "DELETE /api/v1/admin/webhooks/{endpoint_id}", allowed("admin", status=204),
        path=lambda w, o: {"endpoint_id": w["endpoint"].id}, owned=False),
    "matching_run_get": Route(
        "GET /api/v1/director/matching/runs/{job_id}", allowed("director", "admin", status=200),
        path=lambda w, o: {"job_id": w["run"].job_id}, owned=False),
    "matching_run_publish": Route(
        "POST /api/v1/director/matching/runs/{job_id}/publish",
        allowed("director", "admin", status=200),
        path=lambda w, o: {"job_id": w["run"].job_id},
        body=lambda w, o: {"exclude_mentee_ids": [str(w[o]["mentee"].id)]}),
}
COVERS = {route.operation for route in ROUTES.values()}


async def _world(factory) -> dict:
    world: dict[str, Any] = {}
    for role in ("director", "admin", "service"):
        world[role] = await factory.user(role)
    for key in OWNERS:
        tag = f"{key}{uuid.uuid4().hex}"
        mentor = await factory.mentor(name=f"Mentor {tag}")
        mentee = await factory.mentee(name=f"Mentee {tag}")
        await factory.assign(mentor, mentee)
        flag = await factory.flag(mentor, mentee, note=f"Secret note {tag}")
        world[key] = {"mentor": mentor, "mentee": mentee, "flag": flag}
    world["endpoint"] = WebhookEndpoint(
        id=uuid.uuid4(), url=f"https://hooks.example/{uuid.uuid4().hex}",
        secret=f"whsec_{uuid.uuid4().hex}", description=f"Endpoint {uuid.uuid4().hex}")
    now = datetime.now(UTC)
    world["run"] = MatchingRun(job_id=f"match-{uuid.uuid4()}", status="done",
                               dry_run=True, started_at=now, finished_at=now,
                               requested_by=world["director"].id)
    await factory.add(world["endpoint"], world["run"])
    return world


def _secrets(world: dict, key: str) -> set[str]:
    part = world[key]
    return {str(part["mentor"].id), part["mentor"].name, part["mentor"].email,
            str(part["mentee"].id), part["mentee"].name, part["mentee"].email,
            str(part["flag"].id), part["flag"].note}


def _programme_secrets(world: dict) -> set[str]:
    return {world["endpoint"].url, world["endpoint"].secret, world["endpoint"].description}


async def _snapshot(system_db, world: dict) -> tuple:
    async with system_db.transaction(None) as session:
        users = sorted(
            (row.id, row.name, row.email, row.role, row.tier, row.active)
            for row in await session.scalars(select(User).where(User.id.in_(
                [world[k][r].id for k in OWNERS for r in ("mentor", "mentee")]))))
        flags = sorted((row.id, row.status, row.note) for row in await session.scalars(
            select(Flag).where(Flag.mentee_id.in_([world[k]["mentee"].id for k in OWNERS]))))
        endpoint = await session.get(WebhookEndpoint, world["endpoint"].id)
        run = await session.scalar(select(MatchingRun).where(
            MatchingRun.job_id == world["run"].job_id))
        inbound = await session.scalar(select(func.count()).select_from(InboxEvent))
    return (users, flags, endpoint is not None and endpoint.active, run.published_at,
            inbound)


@pytest.mark.parametrize("route,caller,owner", matrix_cells(ROUTES, CALLERS, OWNERS))
async def test_staff_isolation_matrix(client, factory, system_db, route, caller, owner):
    world = await _world(factory)
    spec = ROUTES[route]
    method, template = spec.operation.split(" ", 1)
    url = template.format(**spec.path(world, owner)) if spec.path else template
    if caller in ("director", "admin", "service"):
        user = world[caller]
    else:
        role, key = caller.split("_")
        user = world[key][role]
    before = await _snapshot(system_db, world)

    extra: dict[str, Any] = {}
    if spec.body is not None:
        extra["json"] = spec.body(world, owner)
    if spec.params is not None:
        extra["params"] = spec.params(world, owner)
    response = await client.request(method, url, headers=factory.headers(user), **extra)

    assert_hits(spec.operation, response)
    assert response.status_code == spec.table[caller], (route, caller, owner, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "wrong_role"
        text = body_without_echo(response)
        leaked = {s for s in (*_secrets(world, "a"), *_secrets(world, "b"),
                              *_programme_secrets(world)) if s in text}
        assert not leaked, (route, caller, owner, leaked)
        assert await _snapshot(system_db, world) == before, "a refused call changed something"
    elif spec.owned and method == "GET":
        # Staff see everyone, but a filter on A's mentee answers with A's world only.
        other = "b" if owner == "a" else "a"
        leaked = {s for s in _secrets(world, other) if s in response.text}
        assert not leaked, (route, caller, owner, leaked)
