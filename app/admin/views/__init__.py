"""Every admin view, one per table, in menu order."""

from sqladmin import ModelView

from app.admin.views.domain import (
    AssignmentAdmin,
    CalendarFeedTokenAdmin,
    FlagAdmin,
    MenteePreferencesAdmin,
    ReadinessAdmin,
    ReviewAdmin,
    SessionAdmin,
    SessionFeedbackAdmin,
    SessionTimerAdmin,
    SignalAdmin,
    SubmissionAdmin,
    TimeOffAdmin,
    UserAdmin,
    WaitingMenteeAdmin,
    WorkItemAdmin,
)
from app.admin.views.system import (
    AuditAdmin,
    CapacityAlertAdmin,
    InboxAdmin,
    MatchingProposalAdmin,
    MatchingRunAdmin,
    MatchingUnplacedAdmin,
    OutboxAdmin,
    ProgrammeMetricAdmin,
    ProgrammeMetricDayAdmin,
    WebhookAttemptAdmin,
    WebhookDeliveryAdmin,
    WebhookEndpointAdmin,
)

VIEWS: tuple[type[ModelView], ...] = (
    UserAdmin, AssignmentAdmin, SessionAdmin, SessionFeedbackAdmin, WorkItemAdmin,
    SubmissionAdmin, ReviewAdmin, FlagAdmin, ReadinessAdmin, SignalAdmin, InboxAdmin,
    OutboxAdmin, WebhookEndpointAdmin, WebhookDeliveryAdmin, WebhookAttemptAdmin,
    MatchingRunAdmin, MatchingProposalAdmin, MatchingUnplacedAdmin, MenteePreferencesAdmin,
    CapacityAlertAdmin, ProgrammeMetricAdmin, AuditAdmin, ProgrammeMetricDayAdmin,
    WaitingMenteeAdmin, TimeOffAdmin, SessionTimerAdmin, CalendarFeedTokenAdmin,
)
# URL slugs: sqladmin derives `identity` from the model's class name when the class is
# created (`mentoring-session`); the tables' names read better (`/admin/sessions/list`).
for _view in VIEWS:
    _view.identity = _view.slug  # type: ignore[attr-defined]
