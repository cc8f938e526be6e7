"""A request carrying one `mission.submitted` takes its own path, one round trip
(`ingest_mission_submitted()`, migration 0026); batches keep the set-based statements. The
two must have the same effects: rows, outbox events, audit entries, refusals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.core.auth import Principal
from tests.support.events_helpers import mission_submitted, rows, scalar, service_headers

URL = "/api/v1/events"


async def post(client, factory, body, request_id: str | None = None):
    headers = await service_headers(factory)
    if request_id:
        headers = {**headers, "X-Request-ID": request_id}
    return await client.post(URL, json=body, headers=headers)


async def effects(system_db, body) -> dict:
    """What one submission event left behind, with its own ids replaced by placeholders."""
    submission_id, event_id = body["data"]["submission_id"], body["id"]
    [item] = await rows(system_db, "select * from work_items where source_key = :k",
                        k=f"mission.submitted:{submission_id}")
    [submission] = await rows(system_db, "select * from mission_submissions where id = :i",
                              i=submission_id)
    [outbox] = await rows(system_db, "select type, data, refresh_priority, recipients "
                                     "from outbox_events where data->>'item_id' = :i",
                          i=str(item.id))
    audit = await rows(system_db, "select actor_id, actor_role, action, target_type, changes, "
                                  "request_id from audit_log where target_id = any(:t) "
                                  "order by target_type", t=[submission_id, str(item.id)])
    ids = {submission_id: "<submission>", str(item.id): "<item>", event_id: "<event>",
           body["data"]["mission_id"]: "<mission>", item.source_key: "<key>"}

    def plain(value):
        if isinstance(value, dict):
            return {key: plain(v) for key, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return ids.get(str(value), value) if isinstance(value, str | uuid.UUID) else value

    return {
        "item": plain({k: v for k, v in item._asdict().items()
                       if k not in ("created_at", "updated_at", "due_at")})
        | {"sla": item.due_at - item.created_at},
        "submission": plain({k: v for k, v in submission._asdict().items()
                             if k != "created_at"}),
        "outbox": (outbox.type, plain({k: v for k, v in outbox.data.items() if k != "due_at"}),
                   outbox.refresh_priority, outbox.recipients),
        "audit": [(a.actor_id, a.actor_role, a.action, a.target_type, plain(a.changes),
                   a.request_id) for a in audit],
    }


async def test_one_event_has_the_effects_of_the_same_event_in_a_batch(
    client, factory, system_db
):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    submitted = datetime.now(UTC) - timedelta(hours=1)
    alone, in_batch = (mission_submitted(mentee.id, submitted_at=submitted) for _ in range(2))
    in_batch["data"]["title"] = alone["data"]["title"]
    response = await post(client, factory, alone, request_id="single-request")
    assert response.json() == {"accepted": 1, "duplicates": 0, "duplicate_ids": []}
    response = await post(client, factory, {"events": [in_batch, mission_submitted(mentee.id)]},
                          request_id="single-request")
    assert response.json()["accepted"] == 2

    single, batched = await effects(system_db, alone), await effects(system_db, in_batch)
    assert single == batched
    assert single["outbox"][3] == [mentor.id]
    service = (await factory.role_user("service")).id  # the account `post` signs for
    assert [entry[:4] for entry in single["audit"]] == [
        (service, "service", "mission_submissions.insert", "mission_submissions"),
        (service, "service", "work_items.insert", "work_items"),
    ]
    assert {entry[5] for entry in single["audit"]} == {"single-request"}
    assert await scalar(system_db, "select count(*) from inbox_events where id = :i",
                        i=alone["id"]) == 1


@pytest.mark.parametrize("status, item", [("pending", True), ("approved", False)])
async def test_a_replayed_submission_keeps_its_stored_row(
    client, factory, system_db, status, item
):
    """As for batches: a stored pending submission gets its item for the stored mentee (and
    the event goes to that mentee's mentor); a decided one gets none."""
    mentor, (mentee, other) = await factory.mentor_with_mentees(2)
    submission_id = uuid.uuid4()
    async with system_db.transaction(None) as session:
        await session.execute(text(
            "insert into mission_submissions (id, mentee_id, mission_id, title, submitted_at, "
            "status) values (:i, :m, :mi, 'Stored', now(), :s)"),
            {"i": submission_id, "m": mentee.id, "mi": uuid.uuid4(), "s": status})
    response = await post(client, factory, mission_submitted(other.id,
                                                            submission_id=submission_id))
    assert response.status_code == 202 and response.json()["accepted"] == 1
    items = await rows(system_db, "select id, mentee_id from work_items where source_key = :k",
                       k=f"mission.submitted:{submission_id}")
    assert [i.mentee_id for i in items] == ([mentee.id] if item else [])
    if item:
        [created] = await rows(system_db, "select data, recipients from outbox_events "
                                          "where data->>'item_id' = :i", i=str(items[0].id))
        assert (created.data["mentee_id"], created.recipients) == (str(mentee.id), [mentor.id])
    assert await scalar(system_db, "select title from mission_submissions where id = :i",
                        i=submission_id) == "Stored"


async def test_an_unknown_mentee_is_422_and_nothing_is_recorded(client, factory, system_db):
    _, (mentee,) = await factory.mentor_with_mentees(1)
    body = mission_submitted(uuid.uuid4())
    response = await post(client, factory, body)
    assert response.status_code == 422
    assert response.json()["code"] == "unknown_mentee"
    assert response.json()["errors"][0]["loc"] == ["body", "events", 0, "data", "mentee_id"]
    for table, key in (("inbox_events", body["id"]),
                       ("mission_submissions", body["data"]["submission_id"])):
        assert await scalar(system_db, f"select count(*) from {table} where id = :i",
                            i=key) == 0
    # The same event id, corrected, is applied: the refusal recorded nothing.
    body["data"]["mentee_id"] = str(mentee.id)
    assert (await post(client, factory, body)).json()["accepted"] == 1


async def test_a_repeated_id_in_a_batch_of_one_event(client, factory, system_db):
    _, (mentee,) = await factory.mentor_with_mentees(1)
    one = mission_submitted(mentee.id)
    response = await post(client, factory, {"events": [one, one]})
    assert response.json() == {"accepted": 1, "duplicates": 1, "duplicate_ids": [one["id"]]}
    response = await post(client, factory, {"events": [one, one]})
    assert response.json() == {"accepted": 0, "duplicates": 2,
                               "duplicate_ids": [one["id"], one["id"]]}
    assert await scalar(system_db, "select count(*) from work_items where source_key = :k",
                        k=f"mission.submitted:{one['data']['submission_id']}") == 1


@pytest.mark.parametrize("role", ["mentor", "mentee", "director"])
async def test_the_function_keeps_the_callers_permissions(app_db, factory, role):
    """SECURITY INVOKER: called as another identity than a service, the inbox refuses it
    (and RLS would apply to everything else it writes)."""
    user = await factory.user(role)
    with pytest.raises(DBAPIError) as caught:
        async with app_db.transaction(Principal(user.id, role)) as session:
            await session.execute(text(
                "select ingest_mission_submitted(:e, 'mission.submitted', 'tests', now(), :s,"
                " :m, :mi, 'T', null, now(), :i, 'high', 'k', 'T', '{}', now(),"
                " now() + interval '1 day', :o, '{}', now(), 'normal')"),
                {"e": uuid.uuid4(), "s": uuid.uuid4(), "m": user.id, "mi": uuid.uuid4(),
                 "i": uuid.uuid4(), "o": uuid.uuid4()})
    assert "inbox_record is for service callers" in str(caught.value)
