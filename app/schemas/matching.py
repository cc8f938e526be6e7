"""Shapes of the director's matching routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["queued", "running", "done", "failed", "skipped"]


class MatchingRunCreate(BaseModel):
    """Optional scope of a run (a cohort); without it every unassigned mentee and every
    mentor with a free place take part."""

    model_config = ConfigDict(extra="forbid")

    mentee_ids: list[uuid.UUID] | None = Field(None, max_length=50_000)
    mentor_ids: list[uuid.UUID] | None = Field(None, max_length=10_000)


class MatchingRunAccepted(BaseModel):
    job_id: str
    status: RunStatus
    run_url: str = Field(description="Where the run's result can be read.")


class UnplacedMentee(BaseModel):
    mentee_id: uuid.UUID
    reason: str = Field(description="`no_capacity`, `no_candidate` or `assigned_concurrently`")


class MatchingRunPublic(BaseModel):
    job_id: str
    status: RunStatus
    requested_by: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    assigned_count: int | None
    unplaced_count: int | None
    total_fit: float | None = Field(description="Sum of the new assignments' fits (0..1 each).")
    duration_ms: int | None
    solver_ms: int | None
    unplaced: list[UnplacedMentee]
    error: str | None
