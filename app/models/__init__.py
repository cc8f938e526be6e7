"""SQLAlchemy models, one module per aggregate. Importing this package registers them all."""

from app.models.assignment import Assignment, WaitingMentee
from app.models.audit import AuditEntry
from app.models.base import Base
from app.models.events import InboxEvent, OutboxEvent
from app.models.matching import MatchingProposal, MatchingRun, MatchingUnplaced
from app.models.mission import MissionReview, MissionSubmission
from app.models.ops import CapacityAlert, ProgrammeMetric, ProgrammeMetricDay
from app.models.preferences import MenteePreferences
from app.models.risk import Flag, MenteeSignal, ReadinessRecord
from app.models.scheduling import CalendarFeedToken, SessionTimer, TimeOff
from app.models.session import MentoringSession, SessionFeedback
from app.models.user import User
from app.models.webhook import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.models.work_item import WorkItem

__all__ = [
    "Assignment", "AuditEntry", "Base", "CalendarFeedToken", "CapacityAlert", "Flag",
    "InboxEvent", "MatchingProposal", "MatchingRun", "MatchingUnplaced", "MenteePreferences",
    "MenteeSignal", "MentoringSession", "MissionReview", "MissionSubmission", "OutboxEvent",
    "ProgrammeMetric", "ProgrammeMetricDay", "ReadinessRecord", "SessionFeedback",
    "SessionTimer", "TimeOff", "User", "WaitingMentee", "WebhookAttempt", "WebhookDelivery",
    "WebhookEndpoint", "WorkItem",
]
