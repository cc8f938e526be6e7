"""Admin UI (sqladmin) at `/admin`: every table, searchable and filterable.

Who gets in: users whose role is `admin` or `director`, and nobody else. The login form
takes the user's email and either
- a JWT issued by the platform for that user (the same token the API accepts), or
- the shared `ADMIN_UI_PASSWORD`, which has no default: unset (as in production unless an
  operator sets it), only the JWT login works.
Outside development a missing, public (development) or short `ADMIN_SECRET_KEY` (which
signs the session cookie) disables the admin UI: it lets nobody in, rather than accept
forgeable cookies; the API still serves.
Every admin request re-reads the user's role, so demoting a user ends their access.

How it reads the database: through its own small pool on the API's role (RLS applies), and
every transaction first sets `app.user_id` / `app.role` to the logged-in user, exactly as
an API request does. So an admin sees what the admin role sees and a director what a
director sees (everything except the inbox, outbox and webhook tables, which are hidden
from directors here as well). The workers' BYPASSRLS engine would have been simpler but
would show a director rows that RLS keeps from them.

What it changes: almost nothing. Sessions, assignments, flags, work items and reviews carry
domain rules and outbound events, so they change only through the API; here they are read
only, like the inbox, the outbox and webhook deliveries and attempts. Users (names,
emails, tiers, capacities) and webhook endpoints (active, description) may be edited.
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from contextvars import ContextVar
from typing import Any

import structlog
from fastapi import FastAPI
from sqladmin import Admin, ModelView
from sqladmin.authentication import AuthenticationBackend
from sqladmin.authorization import AuthorizationBackend
from sqladmin.filters import BooleanFilter, OperationColumnFilter, StaticValuesFilter
from sqlalchemy import Select, event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Session
from starlette.requests import Request
from wtforms.validators import InputRequired, NumberRange

from app.config import Settings
from app.core import telemetry
from app.core.auth import Principal, decode_token
from app.core.db import SET_PRINCIPAL, Database, make_engine, principal_parameters
from app.core.errors import Unauthorized
from app.models import (
    Assignment,
    AuditEntry,
    CapacityAlert,
    Flag,
    InboxEvent,
    MatchingProposal,
    MatchingRun,
    MenteePreferences,
    MenteeSignal,
    MentoringSession,
    MissionReview,
    MissionSubmission,
    OutboxEvent,
    ProgrammeMetric,
    ProgrammeMetricDay,
    ReadinessRecord,
    SessionFeedback,
    User,
    WaitingMentee,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WorkItem,
)
from app.models.events import REFRESH_PRIORITIES
from app.models.mission import DECISIONS, SUBMISSION_STATUSES
from app.models.risk import FLAG_STATUSES, SEVERITIES, SIGNAL_KINDS
from app.models.scheduling import CalendarFeedToken, SessionTimer, TimeOff
from app.models.session import SESSION_STATUSES
from app.models.user import MENTOR_CAPACITY_WEEKLY_MAX, MENTOR_MAX_MENTEES_MAX, ROLES
from app.models.webhook import DELIVERY_STATUSES
from app.models.work_item import PRIORITIES, WORK_ITEM_KINDS, WORK_ITEM_STATUSES

log = structlog.get_logger("app.admin")

STAFF_ROLES = ("admin", "director")
# Views over tables that RLS shows to admins only.
ADMIN_ONLY = frozenset({"inbox-events", "outbox-events", "webhook-endpoints",
                        "webhook-deliveries", "webhook-attempts"})

# The logged-in staff member of the current admin request (set by `authenticate`, read by
# the transaction hook below). Each request runs in its own task, so it never leaks.
_current: ContextVar[Principal | None] = ContextVar("admin_principal", default=None)


class AdminSyncSession(Session):
    """Session class of the admin views only, so the identity hook touches nothing else."""


@event.listens_for(AdminSyncSession, "after_begin")
def _set_rls_identity(session: Session, transaction: Any, connection: Any) -> None:
    principal = _current.get()
    if principal is not None:  # no identity: RLS shows nothing at all
        connection.execute(SET_PRINCIPAL, principal_parameters(principal))


def _looks_like_jwt(secret: str) -> bool:
    return secret.count(".") == 2 and secret.startswith("eyJ")


class StaffAuthentication(AuthenticationBackend):
    def __init__(self, settings: Settings, database: Database) -> None:
        # A key that may not sign (missing, public or short) is replaced by a random one, so
        # no cookie verifies: outside development /admin is then disabled (`enabled`); in
        # development a missing key is simply this process's random key.
        usable = settings.admin_key_usable and settings.admin_secret_key
        super().__init__(
            secret_key=settings.admin_secret_key if usable else secrets.token_urlsafe(32),
            session_cookie="mentorship_admin",
            max_age=settings.admin_session_max_age_seconds,
            same_site="strict",  # no cross-site form posts (sqladmin has no CSRF token)
            https_only=settings.environment == "production",
        )
        self.settings = settings
        self.database = database

    @property
    def enabled(self) -> bool:
        return self.settings.admin_key_usable

    async def _staff_user(self, email: str) -> tuple[uuid.UUID, str] | None:
        async with self.database.transaction(None) as session:
            row = (await session.execute(text("select id, role from ops_staff_user(:email)"),
                                         {"email": email})).first()
        return (row.id, row.role) if row else None

    async def verify(self, email: str, secret: str) -> Principal | None:
        """The staff member these credentials prove, or None."""
        if not self.enabled or not email or not secret:
            return None
        staff = await self._staff_user(email)
        if staff is None:
            return None
        user_id, role = staff
        if _looks_like_jwt(secret):
            try:
                token = decode_token(secret, self.settings)
            except Unauthorized:
                return None
            return Principal(user_id, role) if (token.user_id, token.role) == staff else None
        password = self.settings.admin_ui_password
        expected = password.get_secret_value() if password else ""
        if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
            return None
        return Principal(user_id, role)

    async def login(self, request: Request) -> bool:
        form = await request.form()
        principal = await self.verify(str(form.get("username", "")).strip(),
                                      str(form.get("password", "")))
        request.session.clear()
        if principal is None:
            log.warning("admin_login_refused")
            return False
        request.session.update({
            "user_id": str(principal.user_id), "role": principal.role,
            "exp": int(time.time()) + self.settings.admin_session_max_age_seconds,
        })
        log.info("admin_login", user_id=str(principal.user_id), role=principal.role)
        return True

    async def logout(self, request: Request) -> bool:
        request.session.clear()
        return True

    async def authenticate(self, request: Request) -> bool:
        _current.set(None)
        if not self.enabled:
            return False
        data = request.session
        try:
            principal = Principal(uuid.UUID(data["user_id"]), data["role"])
            expired = int(data["exp"]) < time.time()
        except (KeyError, ValueError, TypeError):
            return False
        if expired or principal.role not in STAFF_ROLES:
            request.session.clear()
            return False
        # Still active staff? (a demoted, deactivated or deleted user loses access on their
        # next click)
        async with self.database.transaction(principal) as session:
            row = (await session.execute(select(User.role, User.active)
                                         .where(User.id == principal.user_id))).first()
        if row is None or row.role != principal.role or not row.active:
            request.session.clear()
            return False
        request.state.admin_principal = principal
        _current.set(principal)
        return True


class StaffAuthorization(AuthorizationBackend):
    """Directors do not see the admin-only tables; the views' `can_*` flags do the rest."""

    def has_permission(self, request: Request, identity: str, action: str,
                       obj: Any | None = None) -> bool:
        principal: Principal | None = getattr(request.state, "admin_principal", None)
        if principal is None or principal.role not in STAFF_ROLES:
            return False
        return principal.role == "admin" or identity not in ADMIN_ONLY


class NullFilter:
    """Filter on whether a nullable column is set (published, ended, resolved, ...)."""

    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"

    def __init__(self, column: Any, title: str) -> None:
        self.column = column
        self.title = title
        self.parameter_name = f"{column.key}_set"

    async def lookups(self, request: Request, model: Any, run_query: Any) -> list[tuple[str, str]]:
        return [("all", "All"), ("yes", "Yes"), ("no", "No")]

    async def get_filtered_query(self, query: Select, value: Any, model: Any) -> Select:
        if value == "yes":
            return query.filter(self.column.is_not(None))
        if value == "no":
            return query.filter(self.column.is_(None))
        return query


def _values(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value.replace("_", " ")) for value in values]


class ReadOnlyView(ModelView):
    can_create = False
    can_edit = False
    can_delete = False
    page_size = 50
    page_size_options = [25, 50, 100, 200]


class UserAdmin(ModelView, model=User):
    slug = "users"
    name, name_plural, icon = "User", "Users", "fa-solid fa-user"
    can_create = False  # provisioning: PUT /api/v1/users/{id} or user.upserted events
    can_delete = False
    column_list = [User.id, User.email, User.name, User.role, User.tier, User.timezone,
                   User.is_mentor, User.mentor_capacity_weekly, User.mentor_max_mentees,
                   User.created_at]
    column_searchable_list = [User.email, User.name, User.id, User.tier]
    column_filters = [StaticValuesFilter(User.role, _values(ROLES)), BooleanFilter(User.is_mentor),
                      OperationColumnFilter(User.tier), OperationColumnFilter(User.created_at)]
    column_sortable_list = [User.email, User.name, User.role, User.created_at]
    column_default_sort = [(User.created_at, True)]
    form_columns = [User.name, User.email, User.tier, User.timezone,
                    User.mentor_capacity_weekly, User.mentor_max_mentees]
    # The same limits as every other writer (app/models/user.py, app/schemas/limits.py).
    form_args = {
        "mentor_capacity_weekly": {"validators": [
            InputRequired(), NumberRange(0, MENTOR_CAPACITY_WEEKLY_MAX)]},
        "mentor_max_mentees": {"validators": [
            InputRequired(), NumberRange(0, MENTOR_MAX_MENTEES_MAX)]},
    }


class AssignmentAdmin(ReadOnlyView, model=Assignment):
    slug = "assignments"
    name, name_plural, icon = "Assignment", "Assignments", "fa-solid fa-link"
    column_list = [Assignment.id, Assignment.mentor_id, Assignment.mentee_id, Assignment.source,
                   Assignment.score, Assignment.started_at, Assignment.ended_at]
    column_searchable_list = [Assignment.id, Assignment.mentor_id, Assignment.mentee_id]
    column_filters = [StaticValuesFilter(Assignment.source, _values(("manual", "auto"))),
                      NullFilter(Assignment.ended_at, "Ended"),
                      OperationColumnFilter(Assignment.mentor_id),
                      OperationColumnFilter(Assignment.started_at)]
    column_sortable_list = [Assignment.started_at, Assignment.score]
    column_default_sort = [(Assignment.started_at, True)]


class SessionAdmin(ReadOnlyView, model=MentoringSession):
    slug = "sessions"
    name, name_plural, icon = "Session", "Sessions", "fa-solid fa-calendar"
    column_list = [MentoringSession.starts_at, MentoringSession.status, MentoringSession.agenda,
                   MentoringSession.duration_minutes, MentoringSession.mentor_id,
                   MentoringSession.mentee_id, MentoringSession.id]
    column_searchable_list = [MentoringSession.id, MentoringSession.mentor_id,
                              MentoringSession.mentee_id, MentoringSession.agenda,
                              MentoringSession.meeting_url]
    column_filters = [StaticValuesFilter(MentoringSession.status, _values(SESSION_STATUSES)),
                      OperationColumnFilter(MentoringSession.starts_at),
                      OperationColumnFilter(MentoringSession.mentor_id),
                      OperationColumnFilter(MentoringSession.mentee_id)]
    column_sortable_list = [MentoringSession.starts_at, MentoringSession.status]
    column_default_sort = [(MentoringSession.starts_at, True)]


class SessionFeedbackAdmin(ReadOnlyView, model=SessionFeedback):
    slug = "session-feedback"
    name, name_plural, icon = "Session feedback", "Session feedback", "fa-solid fa-star"
    column_list = [SessionFeedback.session_id, SessionFeedback.mentor_id,
                   SessionFeedback.mentee_id, SessionFeedback.rating, SessionFeedback.comment,
                   SessionFeedback.created_at]
    column_searchable_list = [SessionFeedback.session_id, SessionFeedback.mentor_id,
                              SessionFeedback.mentee_id, SessionFeedback.comment]
    column_filters = [OperationColumnFilter(SessionFeedback.rating),
                      OperationColumnFilter(SessionFeedback.created_at)]
    column_sortable_list = [SessionFeedback.rating, SessionFeedback.created_at]
    column_default_sort = [(SessionFeedback.created_at, True)]


class WorkItemAdmin(ReadOnlyView, model=WorkItem):
    slug = "work-items"
    name, name_plural, icon = "Work item", "Work items", "fa-solid fa-list-check"
    column_list = [WorkItem.id, WorkItem.kind, WorkItem.priority, WorkItem.status,
                   WorkItem.mentee_id, WorkItem.title, WorkItem.due_at, WorkItem.overdue,
                   WorkItem.completed_at]
    column_searchable_list = [WorkItem.id, WorkItem.title, WorkItem.source_key,
                              WorkItem.mentee_id]
    column_filters = [StaticValuesFilter(WorkItem.kind, _values(WORK_ITEM_KINDS)),
                      StaticValuesFilter(WorkItem.priority, _values(PRIORITIES)),
                      StaticValuesFilter(WorkItem.status, _values(WORK_ITEM_STATUSES)),
                      BooleanFilter(WorkItem.overdue), OperationColumnFilter(WorkItem.due_at)]
    column_sortable_list = [WorkItem.due_at, WorkItem.created_at, WorkItem.priority]
    column_default_sort = [(WorkItem.created_at, True)]


class SubmissionAdmin(ReadOnlyView, model=MissionSubmission):
    slug = "mission-submissions"
    name, name_plural, icon = "Mission submission", "Mission submissions", "fa-solid fa-upload"
    column_list = [MissionSubmission.id, MissionSubmission.mentee_id, MissionSubmission.title,
                   MissionSubmission.status, MissionSubmission.submitted_at]
    column_searchable_list = [MissionSubmission.id, MissionSubmission.title,
                              MissionSubmission.mentee_id, MissionSubmission.mission_id]
    column_filters = [StaticValuesFilter(MissionSubmission.status, _values(SUBMISSION_STATUSES)),
                      OperationColumnFilter(MissionSubmission.submitted_at)]
    column_sortable_list = [MissionSubmission.submitted_at]
    column_default_sort = [(MissionSubmission.submitted_at, True)]


class ReviewAdmin(ReadOnlyView, model=MissionReview):
    slug = "mission-reviews"
    name, name_plural, icon = "Mission review", "Mission reviews", "fa-solid fa-check"
    column_list = [MissionReview.submission_id, MissionReview.mentor_id, MissionReview.mentee_id,
                   MissionReview.decision, MissionReview.score, MissionReview.created_at]
    column_searchable_list = [MissionReview.submission_id, MissionReview.mentor_id,
                              MissionReview.mentee_id, MissionReview.feedback]
    column_filters = [StaticValuesFilter(MissionReview.decision, _values(DECISIONS)),
                      OperationColumnFilter(MissionReview.created_at)]
    column_sortable_list = [MissionReview.created_at, MissionReview.score]
    column_default_sort = [(MissionReview.created_at, True)]


class FlagAdmin(ReadOnlyView, model=Flag):
    slug = "flags"
    name, name_plural, icon = "Flag", "Flags", "fa-solid fa-flag"
    column_list = [Flag.id, Flag.mentee_id, Flag.severity, Flag.category, Flag.status,
                   Flag.note, Flag.created_at, Flag.resolved_at]
    column_searchable_list = [Flag.id, Flag.mentee_id, Flag.category, Flag.note]
    column_filters = [StaticValuesFilter(Flag.severity, _values(SEVERITIES)),
                      StaticValuesFilter(Flag.status, _values(FLAG_STATUSES)),
                      OperationColumnFilter(Flag.created_at)]
    column_sortable_list = [Flag.created_at, Flag.severity]
    column_default_sort = [(Flag.created_at, True)]


class ReadinessAdmin(ReadOnlyView, model=ReadinessRecord):
    slug = "readiness"
    name, name_plural, icon = "Readiness record", "Readiness history", "fa-solid fa-chart-line"
    column_list = [ReadinessRecord.mentee_id, ReadinessRecord.score,
                   ReadinessRecord.previous_score, ReadinessRecord.recorded_at]
    column_searchable_list = [ReadinessRecord.mentee_id, ReadinessRecord.event_id]
    column_filters = [OperationColumnFilter(ReadinessRecord.score),
                      OperationColumnFilter(ReadinessRecord.recorded_at)]
    column_sortable_list = [ReadinessRecord.recorded_at, ReadinessRecord.score]
    column_default_sort = [(ReadinessRecord.recorded_at, True)]


class SignalAdmin(ReadOnlyView, model=MenteeSignal):
    slug = "mentee-signals"
    name, name_plural, icon = "Mentee signal", "Mentee signals", "fa-solid fa-signal"
    column_list = [MenteeSignal.mentee_id, MenteeSignal.kind, MenteeSignal.data,
                   MenteeSignal.occurred_at]
    column_searchable_list = [MenteeSignal.mentee_id, MenteeSignal.event_id]
    column_filters = [StaticValuesFilter(MenteeSignal.kind, _values(SIGNAL_KINDS)),
                      OperationColumnFilter(MenteeSignal.occurred_at)]
    column_sortable_list = [MenteeSignal.occurred_at]
    column_default_sort = [(MenteeSignal.occurred_at, True)]


class InboxAdmin(ReadOnlyView, model=InboxEvent):
    slug = "inbox-events"
    name, name_plural, icon = "Inbox event", "Inbox", "fa-solid fa-inbox"
    column_list = [InboxEvent.id, InboxEvent.type, InboxEvent.source, InboxEvent.occurred_at,
                   InboxEvent.received_at]
    column_searchable_list = [InboxEvent.id, InboxEvent.type, InboxEvent.source]
    column_filters = [OperationColumnFilter(InboxEvent.type),
                      OperationColumnFilter(InboxEvent.received_at)]
    column_sortable_list = [InboxEvent.received_at]
    column_default_sort = [(InboxEvent.received_at, True)]


class OutboxAdmin(ReadOnlyView, model=OutboxEvent):
    slug = "outbox-events"
    name, name_plural, icon = "Outbox event", "Outbox", "fa-solid fa-paper-plane"
    column_list = [OutboxEvent.id, OutboxEvent.type, OutboxEvent.refresh_priority,
                   OutboxEvent.created_at, OutboxEvent.attempts, OutboxEvent.published_at,
                   OutboxEvent.last_error]
    column_searchable_list = [OutboxEvent.id, OutboxEvent.type, OutboxEvent.last_error]
    column_filters = [OperationColumnFilter(OutboxEvent.type),
                      StaticValuesFilter(OutboxEvent.refresh_priority, _values(REFRESH_PRIORITIES)),
                      NullFilter(OutboxEvent.published_at, "Published")]
    column_sortable_list = [OutboxEvent.created_at, OutboxEvent.attempts]
    column_default_sort = [(OutboxEvent.created_at, True)]


_ENDPOINT_SECRET = [WebhookEndpoint.secret]


class WebhookEndpointAdmin(ModelView, model=WebhookEndpoint):
    slug = "webhook-endpoints"
    name, name_plural, icon = "Webhook endpoint", "Webhook endpoints", "fa-solid fa-plug"
    can_create = False  # POST /api/v1/admin/webhooks: the secret is shown once, there
    can_delete = False  # DELETE /api/v1/admin/webhooks/{id}
    column_list = [WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.event_types,
                   WebhookEndpoint.active, WebhookEndpoint.description, WebhookEndpoint.created_at]
    column_details_exclude_list = _ENDPOINT_SECRET
    column_export_exclude_list = _ENDPOINT_SECRET
    column_searchable_list = [WebhookEndpoint.url, WebhookEndpoint.description]
    column_filters = [BooleanFilter(WebhookEndpoint.active)]
    form_columns = [WebhookEndpoint.description, WebhookEndpoint.active]


class WebhookDeliveryAdmin(ReadOnlyView, model=WebhookDelivery):
    slug = "webhook-deliveries"
    name, name_plural, icon = "Webhook delivery", "Webhook deliveries", "fa-solid fa-truck"
    column_list = [WebhookDelivery.id, WebhookDelivery.endpoint_id, WebhookDelivery.event_type,
                   WebhookDelivery.status, WebhookDelivery.attempts,
                   WebhookDelivery.next_attempt_at, WebhookDelivery.last_status_code,
                   WebhookDelivery.last_error, WebhookDelivery.delivered_at]
    column_searchable_list = [WebhookDelivery.event_id, WebhookDelivery.event_type,
                              WebhookDelivery.last_error]
    column_filters = [StaticValuesFilter(WebhookDelivery.status, _values(DELIVERY_STATUSES)),
                      OperationColumnFilter(WebhookDelivery.endpoint_id),
                      OperationColumnFilter(WebhookDelivery.created_at)]
    column_sortable_list = [WebhookDelivery.created_at, WebhookDelivery.attempts]
    column_default_sort = [(WebhookDelivery.created_at, True)]


class WebhookAttemptAdmin(ReadOnlyView, model=WebhookAttempt):
    slug = "webhook-attempts"
    name, name_plural, icon = "Webhook attempt", "Webhook attempts", "fa-solid fa-rotate"
    column_list = [WebhookAttempt.id, WebhookAttempt.delivery_id, WebhookAttempt.attempted_at,
                   WebhookAttempt.status_code, WebhookAttempt.error, WebhookAttempt.duration_ms]
    column_searchable_list = [WebhookAttempt.delivery_id, WebhookAttempt.error]
    column_filters = [OperationColumnFilter(WebhookAttempt.status_code),
                      OperationColumnFilter(WebhookAttempt.attempted_at)]
    column_sortable_list = [WebhookAttempt.attempted_at, WebhookAttempt.duration_ms]
    column_default_sort = [(WebhookAttempt.attempted_at, True)]


class MatchingRunAdmin(ReadOnlyView, model=MatchingRun):
    slug = "matching-runs"
    name, name_plural, icon = "Matching run", "Matching runs", "fa-solid fa-shuffle"
    column_list = [MatchingRun.id, MatchingRun.status, MatchingRun.assigned_count,
                   MatchingRun.unplaced_count, MatchingRun.total_fit, MatchingRun.duration_ms,
                   MatchingRun.created_at, MatchingRun.error]
    column_searchable_list = [MatchingRun.job_id, MatchingRun.error]
    column_filters = [StaticValuesFilter(MatchingRun.status, _values(
        ("queued", "running", "done", "failed", "skipped")))]
    column_sortable_list = [MatchingRun.created_at, MatchingRun.duration_ms]
    column_default_sort = [(MatchingRun.created_at, True)]


class MatchingProposalAdmin(ReadOnlyView, model=MatchingProposal):
    slug = "matching-proposals"
    name, name_plural, icon = "Matching proposal", "Matching proposals", "fa-solid fa-list"
    column_list = [MatchingProposal.run_id, MatchingProposal.mentee_id,
                   MatchingProposal.mentor_id, MatchingProposal.fit, MatchingProposal.reasons]
    column_searchable_list = [MatchingProposal.run_id, MatchingProposal.mentee_id,
                              MatchingProposal.mentor_id]
    column_filters = [OperationColumnFilter(MatchingProposal.run_id),
                      OperationColumnFilter(MatchingProposal.mentor_id)]
    column_sortable_list = [MatchingProposal.fit]


class MenteePreferencesAdmin(ReadOnlyView, model=MenteePreferences):
    slug = "mentee-preferences"
    name, name_plural, icon = "Mentee preferences", "Mentee preferences", "fa-solid fa-heart"
    column_list = [MenteePreferences.mentee_id, MenteePreferences.specialties,
                   MenteePreferences.languages, MenteePreferences.max_timezone_offset_hours,
                   MenteePreferences.preferred_mentor_ids, MenteePreferences.updated_at]
    column_searchable_list = [MenteePreferences.mentee_id]
    column_filters = [OperationColumnFilter(MenteePreferences.updated_at)]
    column_sortable_list = [MenteePreferences.updated_at]
    column_default_sort = [(MenteePreferences.updated_at, True)]


class CapacityAlertAdmin(ReadOnlyView, model=CapacityAlert):
    slug = "capacity-alerts"
    name, name_plural, icon = "Capacity alert", "Capacity alerts", "fa-solid fa-gauge-high"
    column_list = [CapacityAlert.mentor_id, CapacityAlert.iso_week,
                   CapacityAlert.weekly_slots_used, CapacityAlert.weekly_slots_total,
                   CapacityAlert.mentees_active, CapacityAlert.mentees_max,
                   CapacityAlert.created_at]
    column_searchable_list = [CapacityAlert.mentor_id, CapacityAlert.iso_week]
    column_filters = [OperationColumnFilter(CapacityAlert.iso_week)]
    column_sortable_list = [CapacityAlert.created_at, CapacityAlert.iso_week]
    column_default_sort = [(CapacityAlert.created_at, True)]


class ProgrammeMetricAdmin(ReadOnlyView, model=ProgrammeMetric):
    slug = "programme-metrics"
    name, name_plural, icon = "Programme metric", "Programme metrics", "fa-solid fa-chart-pie"
    column_list = [ProgrammeMetric.name, ProgrammeMetric.value, ProgrammeMetric.computed_at,
                   ProgrammeMetric.details]
    column_searchable_list = [ProgrammeMetric.name]
    column_filters = [OperationColumnFilter(ProgrammeMetric.name)]
    column_sortable_list = [ProgrammeMetric.name]


class AuditAdmin(ReadOnlyView, model=AuditEntry):
    """Read-only for everyone (append-only in the database; RLS shows it to admins only)."""

    slug = "audit"
    name, name_plural, icon = "Audit entry", "Audit trail", "fa-solid fa-clipboard-list"
    column_list = [AuditEntry.at, AuditEntry.actor_id, AuditEntry.actor_role, AuditEntry.action,
                   AuditEntry.target_type, AuditEntry.target_id, AuditEntry.request_id]
    column_searchable_list = [AuditEntry.target_id, AuditEntry.request_id]
    column_filters = [OperationColumnFilter(AuditEntry.action),
                      OperationColumnFilter(AuditEntry.target_type)]
    column_sortable_list = [AuditEntry.at]
    column_default_sort = [(AuditEntry.id, True)]


class ProgrammeMetricDayAdmin(ReadOnlyView, model=ProgrammeMetricDay):
    slug = "programme-metrics-daily"
    name, name_plural, icon = "Metric day", "Programme history", "fa-solid fa-chart-line"
    column_list = [ProgrammeMetricDay.day, ProgrammeMetricDay.name, ProgrammeMetricDay.value,
                   ProgrammeMetricDay.computed_at]
    column_searchable_list = [ProgrammeMetricDay.name]
    column_filters = [OperationColumnFilter(ProgrammeMetricDay.name)]
    column_sortable_list = [ProgrammeMetricDay.day]
    column_default_sort = [(ProgrammeMetricDay.day, True)]


class WaitingMenteeAdmin(ReadOnlyView, model=WaitingMentee):
    slug = "waiting-mentees"
    name, name_plural, icon = "Waiting mentee", "Waiting list", "fa-solid fa-hourglass"
    column_list = [WaitingMentee.mentee_id, WaitingMentee.since]
    column_searchable_list = [WaitingMentee.mentee_id]
    column_filters = [OperationColumnFilter(WaitingMentee.since)]
    column_sortable_list = [WaitingMentee.since]
    column_default_sort = [(WaitingMentee.since, False)]


class TimeOffAdmin(ReadOnlyView, model=TimeOff):
    slug = "time-off"
    name, name_plural, icon = "Time off", "Time off", "fa-solid fa-umbrella-beach"
    column_list = [TimeOff.mentor_id, TimeOff.starts_at, TimeOff.ends_at, TimeOff.reason]
    column_searchable_list = [TimeOff.mentor_id]
    column_filters = [OperationColumnFilter(TimeOff.starts_at)]
    column_sortable_list = [TimeOff.starts_at]
    column_default_sort = [(TimeOff.starts_at, True)]


class SessionTimerAdmin(ReadOnlyView, model=SessionTimer):
    slug = "session-timers"
    name, name_plural, icon = "Session timer", "Session timers", "fa-solid fa-bell"
    column_list = [SessionTimer.session_id, SessionTimer.kind, SessionTimer.due_at,
                   SessionTimer.done_at]
    column_searchable_list = [SessionTimer.session_id]
    column_filters = [OperationColumnFilter(SessionTimer.kind)]
    column_sortable_list = [SessionTimer.due_at]
    column_default_sort = [(SessionTimer.due_at, True)]


class CalendarFeedTokenAdmin(ReadOnlyView, model=CalendarFeedToken):
    """Only who has a feed and since when: the token is stored hashed and never shown."""

    slug = "calendar-feed-tokens"
    name, name_plural, icon = "Calendar feed", "Calendar feeds", "fa-solid fa-calendar"
    column_list = [CalendarFeedToken.user_id, CalendarFeedToken.created_at]
    column_searchable_list = [CalendarFeedToken.user_id]
    column_filters = [OperationColumnFilter(CalendarFeedToken.created_at)]
    column_sortable_list = [CalendarFeedToken.created_at]


VIEWS: tuple[type[ModelView], ...] = (
    UserAdmin, AssignmentAdmin, SessionAdmin, SessionFeedbackAdmin, WorkItemAdmin,
    SubmissionAdmin, ReviewAdmin, FlagAdmin, ReadinessAdmin, SignalAdmin, InboxAdmin,
    OutboxAdmin, WebhookEndpointAdmin, WebhookDeliveryAdmin, WebhookAttemptAdmin,
    MatchingRunAdmin, MatchingProposalAdmin, MenteePreferencesAdmin, CapacityAlertAdmin,
    ProgrammeMetricAdmin, AuditAdmin, ProgrammeMetricDayAdmin, WaitingMenteeAdmin,
    TimeOffAdmin, SessionTimerAdmin, CalendarFeedTokenAdmin,
)
# URL slugs: sqladmin derives `identity` from the model's class name when the class is
# created (`mentoring-session`); the tables' names read better (`/admin/sessions/list`).
for _view in VIEWS:
    _view.identity = _view.slug  # type: ignore[attr-defined]


def mount_admin(app: FastAPI, settings: Settings) -> AsyncEngine:
    """Mount the admin UI at /admin with its own small pool (the API role). The caller
    disposes of the returned engine at shutdown; it connects only when first used."""
    engine = make_engine(settings.api_db_url, settings, pool_size=2, max_overflow=3)
    telemetry.instrument_engine(engine, pool="admin")
    view_sessions = async_sessionmaker(engine, sync_session_class=AdminSyncSession,
                                       expire_on_commit=False)
    admin = Admin(
        app,
        session_maker=view_sessions,
        base_url="/admin",
        title="Mentorship admin",
        authentication_backend=StaffAuthentication(
            settings, Database(engine, async_sessionmaker(engine, expire_on_commit=False))),
        authorization_backend=StaffAuthorization(),
    )
    for view in VIEWS:
        admin.add_view(view)
    return engine
