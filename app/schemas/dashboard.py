"""Shapes of the mentor's dashboard, mentee list and cockpit, and the mentee's home."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.core.text import OutputText
from app.models.risk import RiskReason
from app.schemas.common import UserProfile
from app.schemas.ops import ProgrammeMetricsPublic
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
    mentee_name: OutputText


class WorkqueueSummary(BaseModel):
    """Counts over the mentor's unfinished work items (status open or in_progress) about
    their active mentees."""

    open: int = Field(description="Unfinished items (open or in progress).")
    in_progress: int
    overdue: int = Field(description="Unfinished items past their due_at (or marked overdue "
                                     "by the SLA sweep).")
    due_24h: int = Field(description="Unfinished items not yet overdue, due within 24 h.")
    by_kind: dict[OutputText, int] = Field(
        description="Unfinished items per kind (every kind listed).")
    by_priority: dict[OutputText, int] = Field(
        description="Unfinished items per priority (every priority listed).")


class AtRiskMentee(BaseModel):
    mentee_id: uuid.UUID
    name: OutputText
    reasons: list[RiskReason]
    risk_score: int = Field(ge=0, le=100, description=RISK_SCORE_DOC)


class CapacitySummary(BaseModel):
    weekly_slots_used: int
    weekly_slots_total: int
    mentees_active: int
    mentees_max: int
    utilization: float = Field(description=UTILIZATION_DOC)
    label: OutputText = Field(
        description='E.g. "7/10 weekly slots".', examples=["7/10 weekly slots"])
    mentees_label: OutputText = Field(examples=["12/20 mentees"])
    iso_week: OutputText = Field(examples=["2026-W48"])
    timezone: OutputText = Field(description="The mentor's time zone the week is evaluated in.")


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
    meeting_url: OutputText | None


class MenteeSummary(BaseModel):
    """An assigned mentee with their risk summary (mentor's list)."""

    mentee_id: uuid.UUID
    name: OutputText
    email: OutputText
    tier: OutputText | None
    timezone: OutputText
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
    mentor_id: uuid.UUID
    started_at: datetime
    source: OutputText
    score: float | None
    reasons: list[OutputText] = Field(description="Why the matcher (or director) paired them.")


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
    severity: OutputText
    category: OutputText
    note: OutputText | None
    status: OutputText = Field(description="open, escalated (by a director) or resolved.")
    resolution: OutputText | None
    raised_by: uuid.UUID
    created_at: datetime
    resolved_at: datetime | None


class SubmissionSummary(BaseModel):
    id: uuid.UUID
    mission_id: uuid.UUID
    title: OutputText
    url: OutputText | None
    submitted_at: datetime
    status: OutputText
    decision: OutputText | None
    review_score: int | None
    reviewed_at: datetime | None


class CockpitPublic(BaseModel):
    profile: MenteeProfile
    assignment: AssignmentSummary | None = Field(
        description="The active assignment (always set in a mentor's cockpit; null in a "
                    "director's for a mentee who is waiting).")
    risk: RiskSummary
    readiness_trend: list[ReadinessPoint] = Field(
        description="The latest readiness records, oldest first.")
    recent_sessions: list[MentorSessionPublic] = Field(
        description="Sessions with the mentee that have started, latest first (a mentor's "
                    "cockpit: with that mentor; a director's: with any mentor).")
    upcoming_sessions: list[MentorSessionPublic] = Field(
        description="Scheduled sessions with the mentee still to start (same scope).")
    open_work_items: list[WorkItemPublic] = Field(
        description="Unfinished items in the work queue's order: overdue first, then "
                    "priority, then due_at.")
    flags: list[FlagSummary] = Field(description="Open flags first, then the latest.")
    recent_submissions: list[SubmissionSummary] = Field(
        description="Latest mission submissions with the review decision, if any.")
    generated_at: datetime


class MentorSummary(BaseModel):
    id: uuid.UUID
    name: OutputText
    specialties: list[OutputText]
    timezone: OutputText


class MenteeHome(BaseModel):
    """The mentee's own view. Never reasons, never flag notes."""

    profile: MenteeProfile
    mentor: MentorSummary | None = Field(description="The current mentor, or null.")
    upcoming_sessions: list[MenteeSessionPublic] = Field(
        description="Own scheduled sessions that have not ended yet, earliest first.")
    at_risk: bool = Field(description="Whether to show the at-risk banner.")


# --- the directors' list of mentors ---------------------------------------------------------

MentorSort = Literal["name", "-name", "load", "-load"]


class MentorLoadPublic(BaseModel):
    mentor_id: uuid.UUID
    name: OutputText
    email: OutputText
    timezone: OutputText
    mentor_specialties: list[OutputText]
    mentees_active: int
    mentees_max: int
    mentees: OutputText = Field(description='"N/max", e.g. "12/20".')
    load: float = Field(
        description="Active mentees / `mentor_max_mentees` (1.0 when the maximum is 0: no room). "
                    "What `sort=load` orders by."
    )
    weekly_slots_used: int
    weekly_slots_total: int
    weekly_slots: OutputText = Field(description='"X/total", e.g. "7/10", this ISO week in the '
                                          "mentor's time zone.")
    utilization: float = Field(description="weekly_slots_used / weekly_slots_total (0 when the "
                                           "weekly capacity is 0).")
    open_items: int = Field(description="Unfinished work items (open or in progress) of the "
                                        "mentor's active mentees.")
    overdue_items: int = Field(description="Of those, the ones past `due_at`.")


# --- the directors' live stream ---------------------------------------------------------------

class DirectorSnapshot(BaseModel):
    """The first event (`snapshot`) of `GET /api/v1/director/stream`."""

    metrics: ProgrammeMetricsPublic = Field(description="As GET /api/v1/director/metrics.")
    open_flags: dict[OutputText, int] = Field(
        description="Unresolved flags (open or escalated) by severity: low, medium, high, "
                    "critical (0 when none).")
    escalated_flags: int = Field(description="Of those, the ones a director escalated.")
    waiting_mentees: int = Field(description="Active mentees with no active assignment.")
    generated_at: datetime
