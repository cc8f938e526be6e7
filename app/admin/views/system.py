"""Admin views of the plumbing: inbox, outbox, webhooks, matching runs, metrics, audit."""

from __future__ import annotations

from sqladmin import ModelView
from sqladmin.filters import BooleanFilter, OperationColumnFilter, StaticValuesFilter

from app.admin.views.base import NullFilter, ReadOnlyView, _values, api_rules
from app.models import (
    AuditEntry,
    CapacityAlert,
    InboxEvent,
    MatchingProposal,
    MatchingRun,
    MatchingUnplaced,
    OutboxEvent,
    ProgrammeMetric,
    ProgrammeMetricDay,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.events import REFRESH_PRIORITIES
from app.models.webhook import DELIVERY_STATUSES
from app.schemas.events import WebhookCreate


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
    form_args = api_rules(WebhookCreate, "description")  # the API's limits


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


class MatchingUnplacedAdmin(ReadOnlyView, model=MatchingUnplaced):
    """Read-only: a trigger keeps these rows from each finished run's `unplaced` map."""

    slug = "matching-unplaced"
    name, name_plural, icon = "Unplaced mentee", "Unplaced mentees", "fa-solid fa-user-clock"
    column_list = [MatchingUnplaced.run_id, MatchingUnplaced.mentee_id, MatchingUnplaced.reason]
    column_searchable_list = [MatchingUnplaced.run_id, MatchingUnplaced.mentee_id]
    column_filters = [OperationColumnFilter(MatchingUnplaced.run_id)]


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
