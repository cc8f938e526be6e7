"""Shapes of the mentor's dashboard, mentee list and cockpit, and the mentee's home."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.models.risk import RiskReason
from app.schemas.common import UserProfile
from app.schemas.risk import RISK_RULES_DOC
from app.schemas.sessions import MenteeSessionPublic, MentorSessionPublic, SessionPublic
from app.schemas.workqueue import WorkItemPublic

RISK_SCORE_DOC = (
    "0-100: the sum of the weights of the mentee's reasons, capped at 100 "
    "(open_flag 15/25/40/60 by the highest open severity low/medium/high/critical; "
    "no_show_last_session 20; readiness_drop 20; overdue_work 15; habit_streak_broken 15; "
    "no_recent_session 15)."
)
UTILIZATION_DOC = (
    "weekly_slots_used / weekly_slots_total for the current ISO week (Monday 00:00 to the "
    "next Monday 00:00) in the mentor's time zone (`mentor_availability.timezone`, else the "
    "user's `timezone`). Live sessions (scheduled, completed, no_show) use a slot; cancelled "
    "ones do not. 0 when weekly_slots_total is 0; above 1 when over capacity."
)


class TodaySession(SessionPublic):
    mentee_name: str


class WorkqueueSummary(BaseModel):
    """Counts over the mentor's unfinished work items (status open or in_progress) about
    their active mentees."""

    open: int = Field(description="Unfinished items (open or in progress).")
    in_progress: int
    overdue: int = Field(description="Unfinished items past their due_at (or marked overdue "
                                     "by the SLA sweep).")
    due_24h: int = Field(description="Unfinished items not yet overdue, due within 24 h.")
    by_kind: dict[str, int] = Field(description="Unfinished items per kind (every kind listed).")
    by_priority: dict[str, int] = Field(
        description="Unfinished items per priority (every priority listed).")


class AtRiskMentee(BaseModel):
    mentee_id: uuid.UUID
    name: str
    reasons: list[RiskReason]
    risk_score: int = Field(ge=0, le=100, description=RISK_SCORE_DOC)


class CapacitySummary(BaseModel):
    weekly_slots_used: int
    weekly_slots_total: int
    mentees_active: int
    mentees_max: int
    utilization: float = Field(description=UTILIZATION_DOC)
    label: str = Field(description='E.g. "7/10 weekly slots".', examples=["7/10 weekly slots"])
    mentees_label: str = Field(examples=["12/20 mentees"])
    iso_week: str = Field(examples=["2026-W48"])
    timezone: str = Field(description="The mentor's time zone the week is evaluated in.")


class DashboardPublic(BaseModel):
    workqueue: WorkqueueSummary
    today_sessions: list[TodaySession] = Field(
        description="Sessions (not cancelled) starting today, midnight to midnight in the "
                    "mentor's time zone, earliest first.")
    at_risk_mentees: list[AtRiskMentee] = Field(
        description="Active mentees with at least one reason, highest risk_score first.\n"
                    + RISK_RULES_DOC)
    capacity: CapacitySummary
    generated_at: datetime


class NextSession(BaseModel):
    id: uuid.UUID
    starts_at: datetime
    duration_minutes: int
    meeting_url: str | None


class MenteeSummary(BaseModel):
    """An assigned mentee with their risk summary (mentor's list)."""

    mentee_id: uuid.UUID
    name: str
    email: str
    tier: str | None
    timezone: str
    assigned_at: datetime
    reasons: list[RiskReason]
    risk_score: int = Field(ge=0, le=100, description=RISK_SCORE_DOC)
    at_risk: bool
    open_items: int = Field(description="Unfinished work items about the mentee.")
    next_session: NextSession | None = Field(
        description="The next scheduled session with this mentor that has not started yet.")


class MenteeProfile(UserProfile):
    pass


class AssignmentSummary(BaseModel):
    id: uuid.UUID
    started_at: datetime
    source: str
    score: float | None
    reasons: list[str] = Field(description="Why the matcher (or director) paired them.")


class RiskSummary(BaseModel):
    reasons: list[RiskReason]
    risk_score: int = Field(ge=0, le=100, description=RISK_SCORE_DOC)
    at_risk: bool


class ReadinessPoint(BaseModel):
    recorded_at: datetime
    score: float
    previous_score: float | None


class FlagSummary(BaseModel):
    id: uuid.UUID
    severity: str
    category: str
    note: str | None
    status: str
    resolution: str | None
    raised_by: uuid.UUID
    created_at: datetime
    resolved_at: datetime | None


class SubmissionSummary(BaseModel):
    id: uuid.UUID
    mission_id: uuid.UUID
    title: str
    url: str | None
    submitted_at: datetime
    status: str
    decision: str | None
    review_score: int | None
    reviewed_at: datetime | None


class CockpitPublic(BaseModel):
    profile: MenteeProfile
    assignment: AssignmentSummary
    risk: RiskSummary
    readiness_trend: list[ReadinessPoint] = Field(
        description="The latest readiness records, oldest first.")
    recent_sessions: list[MentorSessionPublic] = Field(
        description="This mentor's sessions with the mentee that have started, latest first.")
    upcoming_sessions: list[MentorSessionPublic] = Field(
        description="This mentor's scheduled sessions with the mentee still to start.")
    open_work_items: list[WorkItemPublic] = Field(
        description="Unfinished items in the work queue's order: overdue first, then "
                    "priority, then due_at.")
    flags: list[FlagSummary] = Field(description="Open flags first, then the latest.")
    recent_submissions: list[SubmissionSummary] = Field(
        description="Latest mission submissions with the review decision, if any.")
    generated_at: datetime


class MentorSummary(BaseModel):
    id: uuid.UUID
    name: str
    specialties: list[str]
    timezone: str


class MenteeHome(BaseModel):
    """The mentee's own view. Never reasons, never flag notes."""

    profile: MenteeProfile
    mentor: MentorSummary | None = Field(description="The current mentor, or null.")
    upcoming_sessions: list[MenteeSessionPublic] = Field(
        description="Own scheduled sessions that have not ended yet, earliest first.")
    at_risk: bool = Field(description="Whether to show the at-risk banner.")
