"""GET/PATCH /api/v1/mentor/workqueue: order, filters, pages, transitions, events."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.models import WorkItem
from tests.support.workspace_support import load, outbox_events, work_item

URL = "/api/v1/mentor/workqueue"
H = timedelta(hours=1)


async def _ids(client, headers, **params) -> list[str]:
    response = await client.get(URL, headers=headers, params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return [item["id"] for item in response.json()["items"]]


@pytest.fixture
async def queue(factory):
    """A mentor with two mentees and items that exercise every ordering rule."""
    mentor, (ann, bob) = await factory.mentor_with_mentees(2)
    items = {
        "overdue_normal": await work_item(factory, ann, priority="normal", due_in=-1 * H),
        "overdue_low": await work_item(factory, bob, priority="low", due_in=-2 * H,
                                       created_ago=3 * H),
        # Marked overdue by the SLA sweep, though its due date is ahead: still overdue.
        "flagged_overdue_high": await work_item(factory, ann, priority="high", due_in=5 * H,
                                                overdue=True),
        "urgent": await work_item(factory, bob, priority="urgent", due_in=5 * H),
        "high_1h": await work_item(factory, ann, kind="mission_review", priority="high",
                                   due_in=1 * H),
        "high_2h": await work_item(factory, bob, kind="mission_review", priority="high",
                                   due_in=2 * H),
        "high_in_progress": await work_item(factory, ann, priority="high", due_in=10 * H,
                                            status="in_progress"),
        "normal_3h": await work_item(factory, bob, kind="goal_feedback", due_in=3 * H),
        "low_1h": await work_item(factory, ann, kind="session_followup", priority="low",
                                  due_in=1 * H),
        "done": await work_item(factory, ann, status="done", due_in=1 * H,
                                completed_at=datetime.now(UTC)),
    }
    return {"mentor": mentor, "ann": ann, "bob": bob, "items": items,
            "headers": factory.headers(mentor)}


EXPECTED_ORDER = ["flagged_overdue_high", "overdue_normal", "overdue_low", "urgent", "high_1h",
                  "high_2h", "high_in_progress", "normal_3h", "low_1h"]


class TestListing:
    async def test_unfinished_items_most_urgent_first(self, client, queue):
        ids = await _ids(client, queue["headers"])
        assert ids == [str(queue["items"][k].id) for k in EXPECTED_ORDER]

    async def test_item_fields(self, client, queue):
        response = await client.get(URL, headers=queue["headers"])
        body = response.json()
        as_of = datetime.fromisoformat(body["as_of"])
        by_id = {item["id"]: item for item in body["items"]}
        late = by_id[str(queue["items"]["overdue_low"].id)]
        assert late["overdue"] is True and late["status"] == "open"
        assert late["mentee_id"] == str(queue["bob"].id)
        assert late["mentee_name"] == queue["bob"].name
        due = queue["items"]["overdue_low"].due_at
        assert late["sla_remaining_minutes"] == math.floor((due - as_of).total_seconds() / 60)
        assert -121 <= late["sla_remaining_minutes"] <= -120
        soon = by_id[str(queue["items"]["high_1h"].id)]
        assert soon["overdue"] is False and 58 <= soon["sla_remaining_minutes"] <= 60
        assert {"id", "kind", "priority", "status", "mentee_id", "title", "due_at", "overdue",
                "sla_remaining_minutes", "created_at"} <= set(soon)

    async def test_done_items_only_on_request(self, client, queue):
        done = str(queue["items"]["done"].id)
        assert done not in await _ids(client, queue["headers"])
        response = await client.get(URL, headers=queue["headers"], params={"status": "done"})
        [item] = response.json()["items"]
        assert item["id"] == done and item["sla_remaining_minutes"] is None
        every = await _ids(client, queue["headers"],
                           status=["open", "in_progress", "done"])
        assert len(every) == len(queue["items"])

    @pytest.mark.parametrize(("params", "expected"), [
        ({"status": "in_progress"}, ["high_in_progress"]),
        ({"status": "open", "priority": "high"}, ["flagged_overdue_high", "high_1h", "high_2h"]),
        ({"kind": "mission_review"}, ["high_1h", "high_2h"]),
        ({"kind": ["goal_feedback", "session_followup"]}, ["normal_3h", "low_1h"]),
        ({"priority": ["urgent", "low"]}, ["overdue_low", "urgent", "low_1h"]),
        ({"overdue": "true"}, ["flagged_overdue_high", "overdue_normal", "overdue_low"]),
        ({"overdue": "false", "priority": "high"}, ["high_1h", "high_2h", "high_in_progress"]),
    ])
    async def test_filters(self, client, queue, params, expected):
        ids = await _ids(client, queue["headers"], **params)
        assert ids == [str(queue["items"][k].id) for k in expected]

    async def test_mentee_filter(self, client, queue, factory):
        ids = await _ids(client, queue["headers"], mentee_id=str(queue["bob"].id))
        assert ids == [str(queue["items"][k].id)
                       for k in ("overdue_low", "urgent", "high_2h", "normal_3h")]
        _, (stranger,) = await factory.mentor_with_mentees(1)
        await work_item(factory, stranger)
        assert await _ids(client, queue["headers"], mentee_id=str(stranger.id)) == []

    async def test_only_active_mentees_items(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        item = await work_item(factory, mentee)
        other, (others_mentee,) = await factory.mentor_with_mentees(1)
        await work_item(factory, others_mentee)
        assert await _ids(client, factory.headers(mentor)) == [str(item.id)]
        assert str(item.id) not in await _ids(client, factory.headers(other))

    @pytest.mark.parametrize("params", [
        {"limit": 0}, {"limit": 201}, {"status": "closed"}, {"kind": "x"},
        {"priority": "critical"}, {"overdue": "maybe"}, {"mentee_id": "nope"},
        {"cursor": "not-a-cursor"}, {"cursor": "eyJ4IjoxfQ"},
    ])
    async def test_bad_query_is_422_problem(self, client, queue, params):
        response = await client.get(URL, headers=queue["headers"], params=params)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] in {"validation_error", "invalid_cursor"}


class TestPagination:
    async def test_cursor_walk_lists_every_item_exactly_once(self, client, factory):
        mentor, mentees = await factory.mentor_with_mentees(3)
        same_due = timedelta(hours=6)
        created = []
        for n in range(23):
            created.append(await work_item(
                factory, mentees[n % 3], priority=("low", "normal", "high", "urgent")[n % 4],
                # Many ties on (overdue, priority, due_at): the id breaks them.
                due_in=same_due if n % 2 else timedelta(hours=n - 5),
                status="in_progress" if n % 5 == 0 else "open",
            ))
        headers = factory.headers(mentor)
        whole = await _ids(client, headers)
        assert sorted(whole) == sorted(str(i.id) for i in created)

        walked, cursor, pages, as_of = [], None, 0, None
        while True:
            params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
            body = (await client.get(URL, headers=headers, params=params)).json()
            as_of = as_of or body["as_of"]
            assert body["as_of"] == as_of  # the walk keeps its reference time
            walked += [item["id"] for item in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert walked == whole
        assert pages == math.ceil(23 / 4)

    async def test_exact_multiple_of_limit_ends_without_empty_page(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        for _ in range(4):
            await work_item(factory, mentee)
        body = (await client.get(URL, headers=factory.headers(mentor),
                                 params={"limit": 4})).json()
        assert len(body["items"]) == 4 and body["next_cursor"] is None


class TestTransitions:
    async def _patch(self, client, headers, item_id, **body):
        return await client.patch(f"{URL}/{item_id}", headers=headers, json=body)

    async def test_open_in_progress_done(self, client, factory, system_db):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        item = await work_item(factory, mentee, kind="goal_feedback")
        headers = factory.headers(mentor)

        started = await self._patch(client, headers, item.id, status="in_progress",
                                    note="looking")
        assert started.status_code == 200, started.text
        assert started.json()["status"] == "in_progress" and started.json()["note"] == "looking"
        row = await load(system_db, WorkItem, item.id)
        assert row.started_at is not None and row.completed_at is None

        done = await self._patch(client, headers, item.id, status="done", note="sent feedback")
        assert done.status_code == 200, done.text
        assert done.json()["sla_remaining_minutes"] is None
        row = await load(system_db, WorkItem, item.id)
        assert (row.status, row.completed_by, row.note) == ("done", mentor.id, "sent feedback")
        assert row.completed_at is not None

        [event] = await outbox_events(system_db, type="workqueue.item_completed",
                                      item_id=item.id)
        assert event.refresh_priority == "normal"
        assert event.recipients == [mentor.id]
        assert event.data["mentee_id"] == str(mentee.id)

    async def test_open_to_done_directly(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        item = await work_item(factory, mentee)
        response = await self._patch(client, factory.headers(mentor), item.id, status="done")
        assert response.status_code == 200 and response.json()["status"] == "done"

    @pytest.mark.parametrize(("start", "target"), [
        ("done", "done"), ("done", "in_progress"), ("in_progress", "in_progress"),
    ])
    async def test_illegal_transitions_are_409(self, client, factory, system_db, start, target):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        item = await work_item(factory, mentee, status=start)
        response = await self._patch(client, factory.headers(mentor), item.id, status=target)
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "invalid_transition"
        assert (await load(system_db, WorkItem, item.id)).status == start
        assert await outbox_events(system_db, type="workqueue.item_completed",
                                   item_id=item.id) == []

    @pytest.mark.parametrize("body", [{"status": "open"}, {}, {"status": "done", "note": 5}])
    async def test_bad_body_is_422(self, client, factory, body):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        item = await work_item(factory, mentee)
        response = await client.patch(f"{URL}/{item.id}", headers=factory.headers(mentor),
                                      json=body)
        assert response.status_code == 422

    async def test_unknown_item_is_404(self, client, factory):
        mentor = await factory.mentor()
        response = await self._patch(client, factory.headers(mentor), uuid.uuid4(),
                                     status="done")
        assert response.status_code == 404 and response.json()["code"] == "not_found"

    async def test_concurrent_completions_complete_once(self, client, factory, system_db):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        item = await work_item(factory, mentee)
        headers = factory.headers(mentor)
        responses = await asyncio.gather(*(
            self._patch(client, headers, item.id, status="done") for _ in range(10)
        ))
        codes = sorted(r.status_code for r in responses)
        assert codes == [200] + [409] * 9
        assert len(await outbox_events(system_db, type="workqueue.item_completed",
                                       item_id=item.id)) == 1

    async def test_item_follows_the_mentee_to_a_new_mentor(self, client, factory):
        old, (mentee,) = await factory.mentor_with_mentees(1)
        item = await work_item(factory, mentee)
        new = await factory.mentor()
        director = await factory.user("director")
        moved = await client.post("/api/v1/director/assignments",
                                  headers=factory.headers(director),
                                  json={"mentee_id": str(mentee.id), "mentor_id": str(new.id)})
        assert moved.status_code == 201, moved.text
        assert str(item.id) not in await _ids(client, factory.headers(old))
        gone = await self._patch(client, factory.headers(old), item.id, status="done")
        assert gone.status_code == 404
        assert await _ids(client, factory.headers(new)) == [str(item.id)]
