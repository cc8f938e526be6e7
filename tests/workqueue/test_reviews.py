"""POST /api/v1/mentor/missions/{submission_id}/review."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from app.models import MissionReview, MissionSubmission, WorkItem
from tests.support.workspace_support import load, outbox_events, submission


def _url(submission_id) -> str:
    return f"/api/v1/mentor/missions/{submission_id}/review"


@pytest.fixture
async def pending(factory):
    mentor, (mentee,) = await factory.mentor_with_mentees(1)
    sub, item = await submission(factory, mentee)
    return {"mentor": mentor, "mentee": mentee, "submission": sub, "item": item,
            "headers": factory.headers(mentor)}


async def _review_count(system_db, submission_id) -> int:
    async with system_db.transaction(None) as session:
        return await session.scalar(select(func.count()).select_from(MissionReview).where(
            MissionReview.submission_id == submission_id))


class TestReview:
    @pytest.mark.parametrize("decision", ["approved", "changes_requested", "rejected"])
    async def test_review_decides_and_completes_the_item(self, client, system_db, pending,
                                                         decision):
        sub, mentor, mentee = pending["submission"], pending["mentor"], pending["mentee"]
        response = await client.post(_url(sub.id), headers=pending["headers"],
                                     json={"decision": decision, "feedback": "Nice", "score": 87})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["decision"] == decision and body["score"] == 87
        assert body["submission_id"] == str(sub.id) and body["mentor_id"] == str(mentor.id)
        assert body["work_item_id"] == str(pending["item"].id)

        assert (await load(system_db, MissionSubmission, sub.id)).status == decision
        item = await load(system_db, WorkItem, pending["item"].id)
        assert (item.status, item.completed_by) == ("done", mentor.id)

        [reviewed] = await outbox_events(system_db, type="mission.reviewed",
                                         submission_id=sub.id)
        assert reviewed.refresh_priority == "high"
        assert set(reviewed.recipients) == {mentor.id, mentee.id}
        assert reviewed.data["decision"] == decision and reviewed.data["score"] == 87
        assert reviewed.data["mission_id"] == str(sub.mission_id)
        assert reviewed.data["mentee_id"] == str(mentee.id)
        [completed] = await outbox_events(system_db, type="workqueue.item_completed",
                                          item_id=pending["item"].id)
        assert completed.recipients == [mentor.id]

    async def test_review_without_score_or_item(self, client, factory):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        sub, _ = await submission(factory, mentee, with_item=False)
        response = await client.post(_url(sub.id), headers=factory.headers(mentor),
                                     json={"decision": "approved"})
        assert response.status_code == 201, response.text
        assert response.json()["score"] is None and response.json()["work_item_id"] is None

    async def test_item_already_done_stays_as_it_was(self, client, factory, system_db):
        mentor, (mentee,) = await factory.mentor_with_mentees(1)
        sub, item = await submission(factory, mentee)
        headers = factory.headers(mentor)
        done = await client.patch(f"/api/v1/mentor/workqueue/{item.id}", headers=headers,
                                  json={"status": "done"})
        assert done.status_code == 200
        response = await client.post(_url(sub.id), headers=headers,
                                     json={"decision": "rejected"})
        assert response.status_code == 201
        assert len(await outbox_events(system_db, type="workqueue.item_completed",
                                       item_id=item.id)) == 1

    async def test_second_review_is_409(self, client, system_db, pending):
        sub = pending["submission"]
        first = await client.post(_url(sub.id), headers=pending["headers"],
                                  json={"decision": "approved", "score": 90})
        assert first.status_code == 201
        second = await client.post(_url(sub.id), headers=pending["headers"],
                                   json={"decision": "rejected", "score": 10})
        assert second.status_code == 409, second.text
        assert second.json()["code"] == "already_reviewed"
        assert (await load(system_db, MissionSubmission, sub.id)).status == "approved"
        assert await _review_count(system_db, sub.id) == 1

    async def test_concurrent_reviews_record_exactly_one(self, client, system_db, pending):
        sub = pending["submission"]
        decisions = ["approved", "rejected", "changes_requested"] * 4
        responses = await asyncio.gather(*(
            client.post(_url(sub.id), headers=pending["headers"],
                        json={"decision": decision, "score": n})
            for n, decision in enumerate(decisions)
        ))
        codes = [r.status_code for r in responses]
        assert sorted(codes) == [201] + [409] * (len(decisions) - 1), codes
        assert all(r.json()["code"] == "already_reviewed" for r in responses
                   if r.status_code == 409)
        winner = next(r.json() for r in responses if r.status_code == 201)
        assert (await load(system_db, MissionSubmission, sub.id)).status == winner["decision"]
        assert await _review_count(system_db, sub.id) == 1
        assert len(await outbox_events(system_db, type="mission.reviewed",
                                       submission_id=sub.id)) == 1

    async def test_unique_constraint_is_the_backstop(self, factory, system_db, pending):
        """Even a writer that skips the service's check cannot record a second review."""
        from sqlalchemy.exc import IntegrityError

        sub, mentor = pending["submission"], pending["mentor"]
        await factory.add(MissionReview(submission_id=sub.id, mentee_id=sub.mentee_id,
                                        mentor_id=mentor.id, decision="approved"))
        with pytest.raises(IntegrityError) as caught:
            await factory.add(MissionReview(submission_id=sub.id, mentee_id=sub.mentee_id,
                                            mentor_id=mentor.id, decision="rejected"))
        assert caught.value.orig.__cause__.constraint_name == "uq_mission_reviews_submission_id"

    async def test_reviewed_but_pending_submission_is_409(self, client, factory, pending):
        sub, mentor = pending["submission"], pending["mentor"]
        await factory.add(MissionReview(submission_id=sub.id, mentee_id=sub.mentee_id,
                                        mentor_id=mentor.id, decision="approved"))
        response = await client.post(_url(sub.id), headers=pending["headers"],
                                     json={"decision": "approved"})
        assert response.status_code == 409 and response.json()["code"] == "already_reviewed"

    @pytest.mark.parametrize("body", [
        {"decision": "maybe"}, {"decision": "approved", "score": 101},
        {"decision": "approved", "score": -1}, {"score": 50}, {},
    ])
    async def test_bad_body_is_422(self, client, system_db, pending, body):
        response = await client.post(_url(pending["submission"].id), headers=pending["headers"],
                                     json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert await _review_count(system_db, pending["submission"].id) == 0

    async def test_unknown_submission_is_404(self, client, pending):
        response = await client.post(_url(uuid.uuid4()), headers=pending["headers"],
                                     json={"decision": "approved"})
        assert response.status_code == 404

    async def test_former_mentor_cannot_review(self, client, factory, pending, system_db):
        director = await factory.user("director")
        new = await factory.mentor()
        moved = await client.post(
            "/api/v1/director/assignments", headers=factory.headers(director),
            json={"mentee_id": str(pending["mentee"].id), "mentor_id": str(new.id)})
        assert moved.status_code == 201
        response = await client.post(_url(pending["submission"].id), headers=pending["headers"],
                                     json={"decision": "approved"})
        assert response.status_code == 404
        ok = await client.post(_url(pending["submission"].id), headers=factory.headers(new),
                               json={"decision": "approved"})
        assert ok.status_code == 201
        item = await load(system_db, WorkItem, pending["item"].id)
        assert (item.status, item.completed_by) == ("done", new.id)
