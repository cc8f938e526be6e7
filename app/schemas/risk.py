"""Flag shapes. A flag's note is for mentors and directors only, never for the mentee."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Severity = Literal["low", "medium", "high", "critical"]
FlagStatus = Literal["open", "escalated", "resolved"]


class FlagCreate(BaseModel):
    mentee_id: uuid.UUID
    severity: Severity
    category: str = Field(min_length=1, max_length=64)
    note: str | None = Field(None, max_length=4000)


class FlagUpdate(BaseModel):
    status: Literal["resolved"]
    resolution: str | None = Field(None, max_length=4000)


class DirectorFlagUpdate(BaseModel):
    status: Literal["resolved", "escalated"]
    resolution: str | None = Field(
        None, max_length=4000, description="How it was resolved, or why it is escalated.")


class FlagPublic(BaseModel):
    id: uuid.UUID
    mentee_id: uuid.UUID
    mentee_name: str | None = None
    raised_by: uuid.UUID
    severity: Severity
    category: str
    note: str | None
    status: FlagStatus
    resolution: str | None = None
    resolved_by: uuid.UUID | None = None
    resolved_at: datetime | None = None
    escalated_at: datetime | None = None
    escalated_by: uuid.UUID | None = None
    created_at: datetime
