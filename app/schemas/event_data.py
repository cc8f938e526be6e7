"""The `data` of each outbound event type, as the emitters write it.

`emit_many` (app/core/outbox.py) validates every event's data with its type's model before
writing it, so a field an emitter adds, drops or retypes fails at once instead of
surprising a webhook consumer; the set-based emitters that write outbox rows in SQL
(capacity checker, SLA sweep) are checked by their tests against the same models. The
event catalogue (`/asyncapi.json`) and the OpenAPI `webhooks` give each type its schema
from these models. Adding an optional field is a minor change; anything else is breaking.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import OutputText
from app.models.work_item import Priority, WorkItemKind


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SessionTimes(_Data):
    """Who meets when, and where: in every session event."""

    session_id: uuid.UUID
    mentor_id: uuid.UUID
    mentee_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    meeting_url: OutputText | None
    sequence: int = Field(description="The iCalendar SEQUENCE: goes up with every change")


class SessionData(_SessionTimes):
    """A session as it is after the change (`session.scheduled`, `session.completed`)."""

    status: OutputText
    changed_by: uuid.UUID | None = Field(description="The user who changed it (null: system)")
    changed_by_role: OutputText


class SessionRescheduledData(SessionData):
    """Moved by a person (`previous_starts_at`, `previous_duration_minutes`) or handed to a
    new mentor on reassignment (`previous_mentor_id`, `previous_meeting_url`, `reason`)."""

    previous_starts_at: datetime | None = None
    previous_duration_minutes: int | None = None
    previous_mentor_id: uuid.UUID | None = None
    previous_meeting_url: OutputText | None = None
    reason: OutputText | None = None


class SessionCancelledData(SessionData):
    reason: OutputText | None
    cancelled_by: uuid.UUID | None


class SessionReminderData(_SessionTimes):
    minutes_before: int
    due_at: datetime


class AssignmentCreatedData(_Data):
    assignment_id: uuid.UUID
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    source: OutputText
    score: float | None
    reasons: list[OutputText]
    previous_mentor_id: uuid.UUID | None
    started_at: datetime


class AssignmentEndedData(_Data):
    assignment_id: uuid.UUID
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    started_at: datetime
    ended_at: datetime
    end_reason: OutputText
    replaced_by: uuid.UUID | None = None


class MissionReviewedData(_Data):
    review_id: uuid.UUID
    submission_id: uuid.UUID
    mission_id: uuid.UUID
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    decision: OutputText
    score: int | None
    feedback: OutputText | None
    reviewed_at: datetime


class _FlagData(_Data):
    flag_id: uuid.UUID
    mentee_id: uuid.UUID
    severity: OutputText
    category: OutputText
    director_ids: list[uuid.UUID]


class FlagRaisedData(_FlagData):
    mentor_id: uuid.UUID
    raised_at: datetime


class FlagResolvedData(_FlagData):
    resolved_by: uuid.UUID
    resolved_at: datetime


class FlagEscalatedData(_FlagData):
    mentor_id: uuid.UUID | None
    escalated_by: uuid.UUID
    escalated_at: datetime


class WorkItemData(_Data):
    """`workqueue.item_created`; `item_overdue` adds `overdue`, `item_escalated`
    `escalated_at`."""

    item_id: uuid.UUID
    kind: WorkItemKind
    priority: Priority
    mentee_id: uuid.UUID
    due_at: datetime
    title: OutputText


class WorkItemOverdueData(WorkItemData):
    overdue: Literal[True]


class WorkItemEscalatedData(WorkItemData):
    escalated_at: datetime


class WorkItemCompletedData(_Data):
    item_id: uuid.UUID
    kind: WorkItemKind
    mentee_id: uuid.UUID
    completed_by: uuid.UUID
    completed_at: datetime
    due_at: datetime
    overdue: bool


class CapacityExceededData(_Data):
    mentor_id: uuid.UUID
    iso_week: OutputText = Field(examples=["2026-W49"])
    weekly_slots_used: int
    weekly_slots_total: int
    mentees_active: int
    mentees_max: int
    utilization: float = Field(description="weekly_slots_used / weekly_slots_total")
    reasons: list[OutputText]


class MatchingRunFinishedData(_Data):
    job_id: OutputText
    status: OutputText
    dry_run: bool
    assigned: int | None
    proposals: int | None = Field(description="A dry run's proposal count (else null)")
    unplaced: int | None
    total_fit: float | None
    attempts: int
    requested_by: uuid.UUID | None
    error: OutputText | None
    finished_at: datetime | None


class RiskRaisedData(_Data):
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID | None
    reasons: list[OutputText]
    risk_score: int
    cause: OutputText
    raised_at: datetime


class UserDeactivatedData(_Data):
    user_id: uuid.UUID
    role: OutputText
    deactivated_at: datetime
    assignments_ended: list[uuid.UUID]
    sessions_cancelled: list[uuid.UUID]


class UserErasedData(_Data):
    user_id: uuid.UUID
    erased_at: datetime


# type -> its data model: every outbound type (app/core/outbox.py REFRESH_PRIORITY) has one.
OUTBOUND_DATA: dict[OutputText, type[BaseModel]] = {
    "assignment.created": AssignmentCreatedData,
    "assignment.ended": AssignmentEndedData,
    "session.scheduled": SessionData,
    "session.rescheduled": SessionRescheduledData,
    "session.cancelled": SessionCancelledData,
    "session.completed": SessionData,
    "session.reminder": SessionReminderData,
    "mission.reviewed": MissionReviewedData,
    "flag.raised": FlagRaisedData,
    "flag.resolved": FlagResolvedData,
    "workqueue.item_created": WorkItemData,
    "workqueue.item_overdue": WorkItemOverdueData,
    "workqueue.item_completed": WorkItemCompletedData,
    "capacity.exceeded": CapacityExceededData,
    "matching.run_finished": MatchingRunFinishedData,
    "flag.escalated": FlagEscalatedData,
    "risk.raised": RiskRaisedData,
    "workqueue.item_escalated": WorkItemEscalatedData,
    "user.deactivated": UserDeactivatedData,
    "user.erased": UserErasedData,
}

