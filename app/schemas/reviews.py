"""Mission review shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.types import LongText, OutputText

Decision = Literal["approved", "changes_requested", "rejected"]


class MissionReviewCreate(BaseModel):
    decision: Decision
    feedback: LongText | None = None
    score: int | None = Field(None, ge=0, le=100)


class MissionReviewPublic(BaseModel):
    id: uuid.UUID
    submission_id: uuid.UUID
    mission_id: uuid.UUID
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    decision: Decision
    feedback: OutputText | None
    score: int | None
    created_at: datetime
    work_item_id: uuid.UUID | None = Field(
        None, description="The submission's `mission_review` work item, now done (null when "
                          "the submission had none)."
    )


class MenteeReviewPublic(BaseModel):
    """A decided review as its mentee sees it: the feedback is for them."""

    submission_id: uuid.UUID
    mission_id: uuid.UUID
    title: OutputText
    decision: Decision
    feedback: OutputText | None
    score: int | None
    reviewed_at: datetime
