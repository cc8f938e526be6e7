"""Relationship shapes: assignments and their history, the waiting list, user lifecycle."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import OutputText
from app.schemas.types import ShortText

SessionsOnReassign = Literal["cancel", "transfer"]


class AssignmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    sessions: SessionsOnReassign = Field(
        "cancel",
        description="For a reassignment, what happens to the mentee's future live sessions "
                    "with the old mentor: `cancel` (`session.cancelled`, reason "
                    "`reassigned`) or `transfer` (same time, moved to the new mentor under "
                    "every booking rule of theirs except minimum notice; if any one cannot "
                    "move: 409 `transfer_conflict` and nothing changes).",
    )


class AssignmentPublic(BaseModel):
    id: uuid.UUID
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    source: Literal["manual", "auto"]
    score: float | None = None
    reasons: list[OutputText] = Field(default_factory=list)
    assigned_by: uuid.UUID | None = None
    started_at: datetime
    previous_mentor_id: uuid.UUID | None = Field(
        None, description="The mentor whose assignment this one replaced (a reassignment)."
    )
    created: bool = Field(
        description="False when the mentee was already assigned to this mentor: nothing "
                    "changed (answered 200 instead of 201)."
    )
    sessions_cancelled: list[uuid.UUID] = Field(
        default_factory=list,
        description="Future sessions with the previous mentor that were cancelled.")
    sessions_transferred: list[uuid.UUID] = Field(
        default_factory=list,
        description="Future sessions with the previous mentor moved to the new one.")


class AssignmentEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: ShortText = Field(description="Why the relationship ends (kept as `end_reason`).")


class AssignmentHistoryItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    mentor_name: OutputText | None = None
    source: Literal["manual", "auto"]
    score: float | None = None
    started_at: datetime
    ended_at: datetime | None = None
    end_reason: OutputText | None = None


class AssignmentEnded(AssignmentHistoryItem):
    sessions_cancelled: list[uuid.UUID] = Field(
        default_factory=list, description="The future sessions of the pair, now cancelled.")


class WaitingMentee(BaseModel):
    mentee_id: uuid.UUID
    name: OutputText
    email: OutputText
    timezone: OutputText
    tier: OutputText | None = None
    interests: list[OutputText] = Field(default_factory=list)
    waiting_since: datetime = Field(
        description="Since when the mentee has had no active assignment: when the last one "
                    "ended, or when they joined (or became an active mentee again).")
    last_match_reason: OutputText | None = Field(
        None, description="Why the latest finished matcher run did not place them "
                          "(`no_capacity`, `no_candidate`, ...); null if it did not consider "
                          "them.")


class UserDeactivated(BaseModel):
    user_id: uuid.UUID
    role: OutputText
    active: bool
    deactivated_at: datetime | None = None
    changed: bool = Field(description="False when the user was already inactive: nothing "
                                      "changed.")
    assignments_ended: list[uuid.UUID] = Field(default_factory=list)
    sessions_cancelled: list[uuid.UUID] = Field(default_factory=list)
