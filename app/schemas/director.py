"""Director shapes: mentor load and manual assignments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

MentorSort = Literal["name", "-name", "load", "-load"]


class MentorLoadPublic(BaseModel):
    mentor_id: uuid.UUID
    name: str
    email: str
    timezone: str
    mentor_specialties: list[str]
    mentees_active: int
    mentees_max: int
    mentees: str = Field(description='"N/max", e.g. "12/20".')
    load: float = Field(
        description="Active mentees / `mentor_max_mentees` (1.0 when the maximum is 0: no room). "
                    "What `sort=load` orders by."
    )
    weekly_slots_used: int
    weekly_slots_total: int
    weekly_slots: str = Field(description='"X/total", e.g. "7/10", this ISO week in the '
                                          "mentor's time zone.")
    utilization: float = Field(description="weekly_slots_used / weekly_slots_total (0 when the "
                                           "weekly capacity is 0).")
    open_items: int = Field(description="Unfinished work items (open or in progress) of the "
                                        "mentor's active mentees.")
    overdue_items: int = Field(description="Of those, the ones past `due_at`.")


class AssignmentCreate(BaseModel):
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID


class AssignmentPublic(BaseModel):
    id: uuid.UUID
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    source: Literal["manual", "auto"]
    score: float | None = None
    reasons: list[str] = Field(default_factory=list)
    assigned_by: uuid.UUID | None = None
    started_at: datetime
    previous_mentor_id: uuid.UUID | None = Field(
        None, description="The mentor whose assignment this one replaced (a reassignment)."
    )
    created: bool = Field(
        description="False when the mentee was already assigned to this mentor: nothing "
                    "changed (answered 200 instead of 201)."
    )
