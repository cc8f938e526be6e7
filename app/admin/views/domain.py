"""Admin views of the programme's people and their work (users, sessions, reviews, ...)."""

from __future__ import annotations

from sqladmin import ModelView
from sqladmin.filters import BooleanFilter, OperationColumnFilter, StaticValuesFilter
from wtforms.validators import InputRequired, NumberRange

from app.admin.views.base import NullFilter, ReadOnlyView, _values, api_rules
from app.models import (
    Assignment,
    Flag,
    MenteePreferences,
    MenteeSignal,
    MentoringSession,
    MissionReview,
    MissionSubmission,
    ReadinessRecord,
    SessionFeedback,
    User,
    WaitingMentee,
    WorkItem,
)
from app.models.mission import DECISIONS, SUBMISSION_STATUSES
from app.models.risk import FLAG_STATUSES, SEVERITIES, SIGNAL_KINDS
from app.models.scheduling import CalendarFeedToken, SessionTimer, TimeOff
from app.models.session import SESSION_STATUSES
from app.models.user import MENTOR_CAPACITY_WEEKLY_MAX, MENTOR_MAX_MENTEES_MAX, ROLES
from app.models.work_item import PRIORITIES, WORK_ITEM_KINDS, WORK_ITEM_STATUSES
from app.schemas.events import UserUpsert


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
    # The API's schema decides (app/schemas/events.py UserUpsert): an edit it would refuse
    # (time zone `Mars/Base`, capacity over the limit, NUL characters) is refused here
    # with its message, never saved. NumberRange adds the inputs' min/max for the browser.
    form_args = api_rules(UserUpsert, "name", "email", "tier", "timezone",
                          "mentor_capacity_weekly", "mentor_max_mentees", extra={
        "mentor_capacity_weekly": [InputRequired(), NumberRange(0, MENTOR_CAPACITY_WEEKLY_MAX)],
        "mentor_max_mentees": [InputRequired(), NumberRange(0, MENTOR_MAX_MENTEES_MAX)]})


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
