"""Flag shapes. A flag's note is for mentors and directors only, never for the mentee."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.models.risk import RISK_REASONS, Severity
from app.schemas.types import Label, Note, OutputText

# The API's flag status: a stored `open` flag with `escalated_at` set shows as `escalated`
# (app/services/risk/flags.py); the stored status stays open / resolved.
FlagStatus = Literal["open", "escalated", "resolved"]


class FlagCreate(BaseModel):
    mentee_id: uuid.UUID
    severity: Severity
    category: Label
    note: Note | None = None


class FlagUpdate(BaseModel):
    status: Literal["resolved"]
    resolution: Note | None = None


class DirectorFlagUpdate(BaseModel):
    status: Literal["resolved", "escalated"]
    resolution: Note | None = Field(
        None, description="How it was resolved, or why it is escalated.")


class FlagPublic(BaseModel):
    id: uuid.UUID
    mentee_id: uuid.UUID
    mentee_name: OutputText | None = None
    raised_by: uuid.UUID
    severity: Severity
    category: OutputText
    note: OutputText | None
    status: FlagStatus
    resolution: OutputText | None = None
    resolved_by: uuid.UUID | None = None
    resolved_at: datetime | None = None
    escalated_at: datetime | None = None
    escalated_by: uuid.UUID | None = None
    created_at: datetime


# How the service decides (app/services/risk/scoring.py); shown in the dashboard docs.
RISK_RULES_DOC = f"""
A mentee is **at risk** when at least one reason holds (evaluated at request time):

- `{RISK_REASONS[0]}`: an open flag about the mentee. Weight by the highest open severity:
  low 15, medium 25, high 40, critical 60.
- `{RISK_REASONS[1]}`: the latest session with the current mentor that has started
  (cancelled ones ignored) is a `no_show`. Weight 20.
- `{RISK_REASONS[2]}`: over the last 14 days, the highest readiness the mentee had (each
  record's `score` and `previous_score` in the window) minus the latest score is 10 points
  or more. Weight 20.
- `{RISK_REASONS[3]}`: an unfinished work item about the mentee is past its `due_at` (or was
  marked overdue by the SLA sweep), as the work queue counts it. Weight 15.
- `{RISK_REASONS[4]}`: a `habit.streak_broken` signal in the last 7 days. Weight 15.
- `{RISK_REASONS[5]}`: assigned to the current mentor for 21 days or more, and no session
  with them (completed, or scheduled and already started but not still `scheduled` two
  hours after its end) began in the last 21 days; a mentee assigned less than 21 days ago
  is not flagged yet. Weight 15.

`risk_score` (0-100) = the sum of the weights of the mentee's reasons, capped at 100; it
orders the at-risk list (highest first). The mentee only ever sees `at_risk` (a boolean).
"""
