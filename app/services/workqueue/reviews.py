"""Mission review: the mentor decides a submission of one of their mentees.

The submission row is locked first, so concurrent reviews of one submission queue up and
all but the first see it decided (409 `already_reviewed`); the unique constraint on
`mission_reviews.submission_id` is the database's backstop for the same rule.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import exists, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import Conflict, NotFound
from app.core.instants import BoundedDatetime
from app.core.outbox import emit
from app.core.pagination import Keyset
from app.models import MissionReview, MissionSubmission
from app.schemas.reviews import MenteeReviewPublic, MissionReviewPublic
from app.services.workqueue.queue import complete_item, lock_item_by_source_key, my_active_mentees


def review_item_source_key(submission_id: uuid.UUID) -> str:
    """The `source_key` of a submission's `mission_review` work item (set by ingestion)."""
    return f"mission.submitted:{submission_id}"


async def review_submission(
    session: AsyncSession,
    *,
    mentor_id: uuid.UUID,
    submission_id: uuid.UUID,
    decision: str,
    feedback: str | None = None,
    score: int | None = None,
) -> MissionReviewPublic:
    submission = await session.scalar(
        select(MissionSubmission)
        .where(MissionSubmission.id == submission_id,
               MissionSubmission.mentee_id.in_(my_active_mentees(mentor_id)))
        .with_for_update()
    )
    if submission is None:
        raise NotFound("No such submission among your mentees")
    reviewed = await session.scalar(
        select(exists().where(MissionReview.submission_id == submission_id))
    )
    if submission.status != "pending" or reviewed:
        raise Conflict("This submission has already been reviewed", code="already_reviewed",
                       current_status=submission.status)

    at = datetime.now(UTC)
    review = MissionReview(
        id=uuid.uuid4(), submission_id=submission.id, mentee_id=submission.mentee_id,
        mentor_id=mentor_id, decision=decision, feedback=feedback, score=score, created_at=at,
    )
    session.add(review)
    submission.status = decision
    await session.flush()  # the unique constraint speaks now, not at commit

    item = await lock_item_by_source_key(
        session, mentor_id=mentor_id, source_key=review_item_source_key(submission.id)
    )
    if item is not None and item.status != "done":
        await complete_item(session, item=item, by=mentor_id, at=at)
    await emit(
        session,
        type="mission.reviewed",
        data={
            "review_id": review.id, "submission_id": submission.id,
            "mission_id": submission.mission_id, "mentee_id": submission.mentee_id,
            "mentor_id": mentor_id, "decision": decision, "score": score,
            "feedback": feedback, "reviewed_at": at,
        },
        recipients=[mentor_id, submission.mentee_id],
        occurred_at=at,
    )
    await session.flush()
    return MissionReviewPublic(
        id=review.id, submission_id=submission.id, mission_id=submission.mission_id,
        mentee_id=submission.mentee_id, mentor_id=mentor_id, decision=decision,
        feedback=feedback, score=score, created_at=at,
        work_item_id=item.id if item is not None else None,
    )


REVIEWS_CURSOR = Keyset("reviews", BoundedDatetime, uuid.UUID)  # (created_at, id)


async def list_mentee_reviews(
    session: AsyncSession, *, mentee_id: uuid.UUID, limit: int = 50, cursor: str | None = None,
) -> tuple[list[MenteeReviewPublic], str | None]:
    """The mentee's decided mission reviews, newest first (RLS: a mentee reads their own
    reviews and submissions, migration 0011), keyset-paginated on (reviewed_at, id)."""
    query = (select(MissionReview, MissionSubmission)
             .join(MissionSubmission, MissionSubmission.id == MissionReview.submission_id)
             .where(MissionReview.mentee_id == mentee_id))
    after = REVIEWS_CURSOR.decode(cursor)
    if after is not None:
        query = query.where(tuple_(MissionReview.created_at, MissionReview.id) < after)
    rows = (await session.execute(
        query.order_by(MissionReview.created_at.desc(), MissionReview.id.desc())
        .limit(limit + 1))).all()
    items = [MenteeReviewPublic(
        submission_id=review.submission_id, mission_id=submission.mission_id,
        title=submission.title, decision=review.decision, feedback=review.feedback,
        score=review.score, reviewed_at=review.created_at) for review, submission in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        review = rows[limit - 1][0]
        next_cursor = REVIEWS_CURSOR.encode(review.created_at, review.id)
    return items, next_cursor
