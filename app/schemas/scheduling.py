"""API shapes for free slots, time off and calendar subscriptions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.types import BoundedDatetime, OutputText, Reason


class Slot(BaseModel):
    starts_at: datetime
    ends_at: datetime


class SlotsPublic(BaseModel):
    slots: list[Slot]
    timezone: OutputText = Field(description="The mentor's time zone (windows, weeks, the grid)")
    duration_minutes: int
    step_minutes: int = Field(description="Slots start on this grid of the mentor's local "
                                          "wall-clock time (SLOT_STEP_MINUTES)")


class TimeOffCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: BoundedDatetime
    ends_at: BoundedDatetime
    reason: Reason | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class TimeOffPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    mentor_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    reason: OutputText | None
    created_at: datetime


class TimeOffConflict(BaseModel):
    session_id: uuid.UUID
    mentee_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime


class TimeOffCreated(TimeOffPublic):
    conflicts: list[TimeOffConflict] = Field(
        description="Your live sessions inside the period: left as they are, for you to "
                    "move or cancel")
