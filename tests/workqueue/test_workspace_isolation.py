"""Isolation matrix for every workspace and relationship route that takes an id.

Two mentors A and B, each with a mentee, a work item, a pending submission (with its review
item), a decided submission (with the review's feedback), an open flag and the active
assignment. Every route is called by mentor A, mentor B, A's mentee, B's mentee, a director
and a service account, on A's objects and on B's: the status of every cell is fixed below, a
refused call changes nothing, and no body ever carries data of a world the caller is not
entitled to (the other mentor's or the other mentee's, or any flag note for a mentee).
The SSE routes' refusals are in `test_streams_refuse_everyone_else` (their 200s stream
forever: tests/live/).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from app.models import (
    Assignment,
    Flag,
    MissionReview,
    MissionSubmission,
    OutboxEvent,
    User,
    WorkItem,
)
from tests.support.isolation import assert_hits
from tests.support.workspace_support import body_without_echo, load, submission, work_item

CALLERS = ("mentor_a", "mentor_b", "mentee_a", "mentee_b", "director", "service")
OWNERS = ("a", "b")


async def _world(factory) -> dict:
    world = {"director": await factory.user("director", name=f"Dina {uuid.uuid4().hex[:6]}")}
    for key in OWNERS:
        mentor, (mentee,) = await factory.mentor_with_mentees(
            1, name=f"Mentor {key.upper()} {uuid.uuid4().hex[:8]}")
        item = await work_item(factory, mentee, title=f"Item of {key} {uuid.uuid4().hex}")
        sub, review_item = await submission(factory, mentee,
                                            title=f"Mission of {key} {uuid.uuid4().hex}")
        flag = await factory.flag(mentor, mentee, note=f"Secret note {key} {uuid.uuid4().hex}")
        decided, _ = await submission(factory, mentee, with_item=False,
                                      title=f"Decided mission of {key} {uuid.uuid4().hex}")
        review = MissionReview(submission_id=decided.id, mentee_id=mentee.id,
                               mentor_id=mentor.id, decision="approved",
                               feedback=f"Feedback for {key} {uuid.uuid4().hex}")
        await factory.add(review)
        assignment = await factory.run(lambda session, m=mentee: session.scalar(
            select(Assignment).where(Assignment.mentee_id == m.id,
                                     Assignment.ended_at.is_(None))))
        world[key] = {"mentor": mentor, "mentee": mentee, "item": item, "submission": sub,
                      "review_item": review_item, "flag": flag, "decided": decided,
                      "review": review, "assignment": assignment}
    world["service"] = await factory.user("service")
    return world


def _secrets(part: dict) -> set[str]:
    """Every identifying value of one mentor's world."""
    return {
        str(part["mentor"].id), part["mentor"].name, part["mentor"].email,
        str(part["mentee"].id), part["mentee"].name, part["mentee"].email,
        str(part["item"].id), part["item"].title, str(part["submission"].id),
        part["submission"].title, str(part["review_item"].id), str(part["flag"].id),
        part["flag"].note, str(part["decided"].id), part["decided"].title,
        part["review"].feedback, str(part["assignment"].id),
    }


def _caller(world: dict, caller: str):
    if caller in ("director", "service"):
        return world[caller]
    role, key = caller.split("_")
    return world[key][role]


# route -> how to call it on owner's objects; expected status when the caller owns them.
ROUTES = {
    "workqueue_patch": ("PATCH", lambda w, o: f"/api/v1/mentor/workqueue/{w[o]['item'].id}",
                        lambda w, o, target: {"status": "done", "note": "ok"}, 200),
    "review_post": ("POST",
                    lambda w, o: f"/api/v1/mentor/missions/{w[o]['submission'].id}/review",
                    lambda w, o, target: {"decision": "approved", "score": 70}, 201),
    "flag_patch": ("PATCH", lambda w, o: f"/api/v1/mentor/flags/{w[o]['flag'].id}",
                   lambda w, o, target: {"status": "resolved", "resolution": "fine"}, 200),
    "flag_post": ("POST", lambda w, o: "/api/v1/mentor/flags",
                  lambda w, o, target: {"mentee_id": str(w[o]["mentee"].id), "severity": "low",
                                        "category": "isolation"}, 201),
    # Move owner's mentee to the other mentor (with their sessions).
    "assignment_post": ("POST", lambda w, o: "/api/v1/director/assignments",
                        lambda w, o, target: {"mentee_id": str(w[o]["mentee"].id),
                                              "mentor_id": str(w[target]["mentor"].id),
                                              "sessions": "transfer"}, 201),
    # v2: relationships, director flags and cockpit, mentee reviews, deactivation.
    "assignment_end": ("POST",
                       lambda w, o: f"/api/v1/director/assignments/{w[o]['assignment'].id}/end",
                       lambda w, o, target: {"reason": "isolation"}, 200),
    "assignment_history": ("GET",
                           lambda w, o: f"/api/v1/director/mentees/{w[o]['mentee'].id}"
                                        "/assignments", lambda w, o, target: None, 200),
    "director_cockpit": ("GET",
                         lambda w, o: f"/api/v1/director/mentees/{w[o]['mentee'].id}/cockpit",
                         lambda w, o, target: None, 200),
    "director_flag_patch": ("PATCH", lambda w, o: f"/api/v1/director/flags/{w[o]['flag'].id}",
                            lambda w, o, target: {"status": "escalated"}, 200),
    "waiting_list": ("GET", lambda w, o: "/api/v1/director/waiting",
                     lambda w, o, target: None, 200),
    "mentee_reviews": ("GET", lambda w, o: "/api/v1/mentee/reviews",
                       lambda w, o, target: None, 200),
    "deactivate": ("POST", lambda w, o: f"/api/v1/users/{w[o]['mentee'].id}/deactivate",
                   lambda w, o, target: None, 200),
}
# The operation each route of the matrix calls (each cell checks it really does).
OPERATIONS = {
    "workqueue_patch": "PATCH /api/v1/mentor/workqueue/{item_id}",
    "review_post": "POST /api/v1/mentor/missions/{submission_id}/review",
    "flag_patch": "PATCH /api/v1/mentor/flags/{flag_id}",
    "flag_post": "POST /api/v1/mentor/flags",
    "assignment_post": "POST /api/v1/director/assignments",
    "assignment_end": "POST /api/v1/director/assignments/{assignment_id}/end",
    "assignment_history": "GET /api/v1/director/mentees/{mentee_id}/assignments",
    "director_cockpit": "GET /api/v1/director/mentees/{mentee_id}/cockpit",
    "director_flag_patch": "PATCH /api/v1/director/flags/{flag_id}",
    "waiting_list": "GET /api/v1/director/waiting",
    "mentee_reviews": "GET /api/v1/mentee/reviews",
    "deactivate": "POST /api/v1/users/{user_id}/deactivate",
}
# What tests/contract/test_isolation_coverage.py counts as covered here: the matrix, plus
# the work queue's `mentee_id` filter (`test_work_queue_listing_never_shows_the_other_mentor`).
COVERS = {*OPERATIONS.values(), "GET /api/v1/mentor/workqueue"}
STAFF_ROUTES = {"assignment_post", "assignment_end", "assignment_history", "director_cockpit",
                "director_flag_patch", "waiting_list"}


def expected_status(route: str, caller: str, owner: str) -> int:
    ok = ROUTES[route][3]
    if route in STAFF_ROUTES:
        return ok if caller == "director" else 403
    if route == "deactivate":
        return ok if caller == "service" else 403
    if route == "mentee_reviews":
        return ok if caller.startswith("mentee") else 403
    if caller.startswith("mentee") or caller in ("director", "service"):
        return 403
    return ok if caller == f"mentor_{owner}" else 404


async def _snapshot(system_db, part: dict) -> tuple:
    """Everything a refused call must leave untouched, for one world."""
    async with system_db.transaction(None) as session:
        item = await session.get(WorkItem, part["item"].id)
        review_item = await session.get(WorkItem, part["review_item"].id)
        sub = await session.get(MissionSubmission, part["submission"].id)
        flag = await session.get(Flag, part["flag"].id)
        flags = await session.scalar(select(func.count()).select_from(Flag).where(
            Flag.mentee_id == part["mentee"].id))
        assignment = await session.scalar(select(Assignment.mentor_id).where(
            Assignment.mentee_id == part["mentee"].id, Assignment.ended_at.is_(None)))
        events = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.data["mentee_id"].astext == str(part["mentee"].id)))
        active = await session.scalar(select(User.active).where(User.id == part["mentee"].id))
    return (item.status, item.note, review_item.status, sub.status, flag.status,
            flag.escalated_at, flags, assignment, events, active)


@pytest.mark.parametrize("owner", OWNERS)
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", list(ROUTES))
async def test_isolation_matrix(client, factory, system_db, route, caller, owner):
    world = await _world(factory)
    other = "b" if owner == "a" else "a"
    method, url, body, _ = ROUTES[route]
    before = {key: await _snapshot(system_db, world[key]) for key in OWNERS}

    payload = body(world, owner, other)
    response = await client.request(method, url(world, owner),
                                     headers=factory.headers(_caller(world, caller)),
                                     **({"json": payload} if payload is not None else {}))
    assert_hits(OPERATIONS[route], response)

    expected = expected_status(route, caller, owner)
    assert response.status_code == expected, (route, caller, owner, response.text)
    text = body_without_echo(response)
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
        leaked = {s for key in OWNERS for s in _secrets(world[key]) if s in text}
        assert not leaked, (route, caller, owner, leaked)
        after = {key: await _snapshot(system_db, world[key]) for key in OWNERS}
        assert after == before, "a refused call must change nothing"
    else:
        # A mentor acting on their own objects sees nothing of the other mentor's world; a
        # director may see both.
        if caller.startswith(("mentor", "mentee")):
            mine = caller.split("_")[1]
            theirs = "b" if mine == "a" else "a"
            leaked = {s for s in _secrets(world[theirs]) if s in text}
            assert not leaked, (route, caller, owner, leaked)
            assert world[mine]["flag"].note not in text or route == "flag_patch"
        if route == "mentee_reviews":  # their own feedback, nothing else
            mine = world[caller.split("_")[1]]
            assert [r["submission_id"] for r in response.json()["items"]] == [
                str(mine["decided"].id)]
            assert mine["review"].feedback in text


async def test_owner_calls_really_took_effect(client, factory, system_db):
    """The 2xx cells of the matrix are real changes, not answers that changed nothing."""
    world = await _world(factory)
    a = world["a"]
    headers = factory.headers(a["mentor"])
    for route in ("workqueue_patch", "review_post", "flag_patch"):
        method, url, body, ok = ROUTES[route]
        response = await client.request(method, url(world, "a"), headers=headers,
                                        json=body(world, "a", "b"))
        assert response.status_code == ok
    assert (await load(system_db, WorkItem, a["item"].id)).status == "done"
    assert (await load(system_db, WorkItem, a["review_item"].id)).status == "done"
    assert (await load(system_db, MissionSubmission, a["submission"].id)).status == "approved"
    assert (await load(system_db, Flag, a["flag"].id)).status == "resolved"


async def test_work_queue_listing_never_shows_the_other_mentor(client, factory):
    world = await _world(factory)
    for key, other in (("a", "b"), ("b", "a")):
        response = await client.get("/api/v1/mentor/workqueue",
                                    headers=factory.headers(world[key]["mentor"]),
                                    params={"status": ["open", "in_progress", "done"],
                                            "mentee_id": str(world[other]["mentee"].id)})
        assert response.status_code == 200 and response.json()["items"] == []
        everything = await client.get("/api/v1/mentor/workqueue",
                                      headers=factory.headers(world[key]["mentor"]),
                                      params={"limit": 200})
        text = everything.text
        assert not {s for s in _secrets(world[other]) if s in text}
        assert {str(world[key]["item"].id), str(world[key]["review_item"].id)} <= {
            i["id"] for i in everything.json()["items"]}
    for caller in ("mentee_a", "director"):
        response = await client.get("/api/v1/mentor/workqueue",
                                    headers=factory.headers(_caller(world, caller)))
        assert response.status_code == 403


@pytest.mark.parametrize("path,allowed", [("/api/v1/director/stream", "director"),
                                          ("/api/v1/mentee/stream", "mentee_a")])
async def test_streams_refuse_everyone_else(client, factory, path, allowed):
    """Refusals come before a stream starts: 403 problems that carry nothing of anyone."""
    world = await _world(factory)
    for caller in CALLERS:
        if caller == allowed or (allowed == "mentee_a" and caller == "mentee_b"):
            continue
        response = await client.get(path, headers=factory.headers(_caller(world, caller)))
        assert response.status_code == 403, (path, caller)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert not {s for key in OWNERS for s in _secrets(world[key]) if s in response.text}
