"""Schema: every table, constraint and index (reviewed by hand).

The session overlap rules are exclusion constraints over tstzrange and need btree_gist
(to mix `=` on a UUID with `&&` on a range). Roles and RLS follow in 0002.

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 16:44:52.903694
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table('inbox_events',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_events'))
    )
    op.create_table('matching_runs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('job_id', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='queued', nullable=False),
    sa.Column('requested_by', sa.UUID(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('assigned_count', sa.Integer(), nullable=True),
    sa.Column('unplaced_count', sa.Integer(), nullable=True),
    sa.Column('total_fit', sa.Float(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('solver_ms', sa.Integer(), nullable=True),
    sa.Column('unplaced', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status in ('queued', 'running', 'done', 'failed', 'skipped')", name=op.f('ck_matching_runs_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_matching_runs')),
    sa.UniqueConstraint('job_id', name=op.f('uq_matching_runs_job_id'))
    )
    op.create_table('outbox_events',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('refresh_priority', sa.String(length=16), nullable=False),
    sa.Column('recipients', postgresql.ARRAY(sa.UUID()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.CheckConstraint("refresh_priority in ('urgent', 'high', 'normal')", name=op.f('ck_outbox_events_refresh_priority')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_events'))
    )
    op.create_index('ix_outbox_events_pending', 'outbox_events', ['created_at'], unique=False, postgresql_where=sa.text('published_at is null'))
    op.create_table('programme_metrics',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_programme_metrics'))
    )
    op.create_table('users',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False),
    sa.Column('tier', sa.String(length=32), nullable=True),
    sa.Column('interests', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('is_mentor', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('mentor_capacity_weekly', sa.Integer(), server_default=sa.text('10'), nullable=False),
    sa.Column('mentor_max_mentees', sa.Integer(), server_default=sa.text('20'), nullable=False),
    sa.Column('mentor_specialties', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('mentor_availability', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text('\'{"timezone": "UTC", "windows": []}\'::jsonb'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("role in ('mentee', 'mentor', 'director', 'admin', 'service')", name=op.f('ck_users_role')),
    sa.CheckConstraint('mentor_capacity_weekly >= 0', name=op.f('ck_users_capacity_nonneg')),
    sa.CheckConstraint('mentor_max_mentees >= 0', name=op.f('ck_users_max_mentees_nonneg')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users'))
    )
    op.create_index('ix_users_mentors', 'users', ['id'], unique=False, postgresql_where=sa.text('is_mentor'))
    op.create_index('uq_users_email', 'users', [sa.literal_column('lower(email)')], unique=True)
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('secret', sa.Text(), nullable=False),
    sa.Column('event_types', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints'))
    )
    op.create_table('assignments',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('mentee_id', sa.UUID(), nullable=False),
    sa.Column('mentor_id', sa.UUID(), nullable=False),
    sa.Column('source', sa.String(length=16), server_default='manual', nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('reasons', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('assigned_by', sa.UUID(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.CheckConstraint("source in ('manual', 'auto')", name=op.f('ck_assignments_source')),
    sa.CheckConstraint('mentor_id <> mentee_id', name=op.f('ck_assignments_not_self')),
    sa.ForeignKeyConstraint(['mentee_id'], ['users.id'], name=op.f('fk_assignments_mentee_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mentor_id'], ['users.id'], name=op.f('fk_assignments_mentor_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments'))
    )
    op.create_index('ix_assignments_active_mentor', 'assignments', ['mentor_id', 'mentee_id'], unique=False, postgresql_where=sa.text('ended_at is null'))
    op.create_index('ix_assignments_mentee_id', 'assignments', ['mentee_id'], unique=False)
    op.create_index('uq_assignments_active_mentee', 'assignments', ['mentee_id'], unique=True, postgresql_where=sa.text('ended_at is null'))
    op.create_table('capacity_alerts',
    sa.Column('mentor_id', sa.UUID(), nullable=False),
    sa.Column('iso_week', sa.String(length=8), nullable=False),
    sa.Column('weekly_slots_used', sa.Integer(), nullable=False),
    sa.Column('weekly_slots_total', sa.Integer(), nullable=False),
    sa.Column('mentees_active', sa.Integer(), nullable=False),
    sa.Column('mentees_max', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['mentor_id'], ['users.id'], name=op.f('fk_capacity_alerts_mentor_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mentor_id', 'iso_week', name=op.f('pk_capacity_alerts'))
    )
    op.create_table('flags',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('mentee_id', sa.UUID(), nullable=False),
    sa.Column('raised_by', sa.UUID(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('resolved_by', sa.UUID(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("severity in ('low', 'medium', 'high', 'critical')", name=op.f('ck_flags_severity')),
    sa.CheckConstraint("status in ('open', 'resolved')", name=op.f('ck_flags_status')),
    sa.ForeignKeyConstraint(['mentee_id'], ['users.id'], name=op.f('fk_flags_mentee_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['raised_by'], ['users.id'], name=op.f('fk_flags_raised_by_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flags'))
    )
    op.create_index('ix_flags_mentee_id_status', 'flags', ['mentee_id', 'status'], unique=False)
    op.create_index('ix_flags_status_severity_created_at', 'flags', ['status', 'severity', 'created_at'], unique=False)
    op.create_table('mentee_signals',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('mentee_id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind in ('habit_streak_broken', 'goal_overdue')", name=op.f('ck_mentee_signals_kind')),
    sa.ForeignKeyConstraint(['mentee_id'], ['users.id'], name=op.f('fk_mentee_signals_mentee_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mentee_signals')),
    sa.UniqueConstraint('event_id', name=op.f('uq_mentee_signals_event_id'))
    )
    op.create_index('ix_mentee_signals_mentee_id_kind_occurred_at', 'mentee_signals', ['mentee_id', 'kind', 'occurred_at'], unique=False)
    op.create_table('mission_submissions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('mentee_id', sa.UUID(), nullable=False),
    sa.Column('mission_id', sa.UUID(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=24), server_default='pending', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status in ('pending', 'approved', 'changes_requested', 'rejected')", name=op.f('ck_mission_submissions_status')),
    sa.ForeignKeyConstraint(['mentee_id'], ['users.id'], name=op.f('fk_mission_submissions_mentee_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mission_submissions'))
    )
    op.create_index('ix_mission_submissions_mentee_id_submitted_at', 'mission_submissions', ['mentee_id', 'submitted_at'], unique=False)
    op.create_table('readiness_history',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('mentee_id', sa.UUID(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('previous_score', sa.Float(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_id', sa.UUID(), nullable=True),
    sa.ForeignKeyConstraint(['mentee_id'], ['users.id'], name=op.f('fk_readiness_history_mentee_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_readiness_history')),
    sa.UniqueConstraint('event_id', name=op.f('uq_readiness_history_event_id'))
    )
    op.create_index('ix_readiness_history_mentee_id_recorded_at', 'readiness_history', ['mentee_id', 'recorded_at'], unique=False)
    op.create_table('sessions',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('mentor_id', sa.UUID(), nullable=False),
    sa.Column('mentee_id', sa.UUID(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_minutes', sa.SmallInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='scheduled', nullable=False),
    sa.Column('meeting_url', sa.Text(), nullable=True),
    sa.Column('agenda', sa.Text(), nullable=True),
    sa.Column('mentor_notes', sa.Text(), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('sequence', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    postgresql.ExcludeConstraint((sa.column('mentee_id'), '='), (sa.text("tstzrange(starts_at, ends_at, '[)')"), '&&'), where=sa.text("status <> 'cancelled'"), using='gist', name='ex_sessions_mentee_overlap'),
    postgresql.ExcludeConstraint((sa.column('mentor_id'), '='), (sa.text("tstzrange(starts_at, ends_at, '[)')"), '&&'), where=sa.text("status <> 'cancelled'"), using='gist', name='ex_sessions_mentor_overlap'),
    sa.CheckConstraint("status in ('scheduled', 'completed', 'no_show', 'cancelled')", name=op.f('ck_sessions_status')),
    sa.CheckConstraint('duration_minutes between 15 and 240', name=op.f('ck_sessions_duration')),
    sa.CheckConstraint('ends_at = starts_at + make_interval(mins => duration_minutes)', name=op.f('ck_sessions_ends_at')),
    sa.ForeignKeyConstraint(['mentee_id'], ['users.id'], name=op.f('fk_sessions_mentee_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mentor_id'], ['users.id'], name=op.f('fk_sessions_mentor_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions'))
    )
    op.create_index('ix_sessions_mentee_id_starts_at', 'sessions', ['mentee_id', 'starts_at'], unique=False)
    op.create_index('ix_sessions_mentor_id_starts_at', 'sessions', ['mentor_id', 'starts_at'], unique=False)
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('endpoint_id', sa.UUID(), nullable=False),
    sa.Column('event_id', sa.UUID(), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status in ('pending', 'delivered', 'failed')", name=op.f('ck_webhook_deliveries_status')),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('endpoint_id', 'event_id', name=op.f('uq_webhook_deliveries_endpoint_id_event_id'))
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries', ['next_attempt_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_table('work_items',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('mentee_id', sa.UUID(), nullable=False),
    sa.Column('source_key', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('overdue', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_by', sa.UUID(), nullable=True),
    sa.CheckConstraint("kind in ('mission_review', 'risk_assessment', 'goal_feedback', 'session_followup')", name=op.f('ck_work_items_kind')),
    sa.CheckConstraint("priority in ('low', 'normal', 'high', 'urgent')", name=op.f('ck_work_items_priority')),
    sa.CheckConstraint("status in ('open', 'in_progress', 'done')", name=op.f('ck_work_items_status')),
    sa.CheckConstraint('due_at > created_at', name=op.f('ck_work_items_due_after_created')),
    sa.ForeignKeyConstraint(['mentee_id'], ['users.id'], name=op.f('fk_work_items_mentee_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_work_items')),
    sa.UniqueConstraint('source_key', name=op.f('uq_work_items_source_key'))
    )
    op.create_index('ix_work_items_completed_at', 'work_items', ['completed_at'], unique=False, postgresql_where=sa.text('completed_at is not null'))
    op.create_index('ix_work_items_mentee_id_status', 'work_items', ['mentee_id', 'status'], unique=False)
    op.create_index('ix_work_items_open_due_at', 'work_items', ['due_at'], unique=False, postgresql_where=sa.text("status <> 'done'"))
    op.create_table('mission_reviews',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('submission_id', sa.UUID(), nullable=False),
    sa.Column('mentee_id', sa.UUID(), nullable=False),
    sa.Column('mentor_id', sa.UUID(), nullable=False),
    sa.Column('decision', sa.String(length=24), nullable=False),
    sa.Column('feedback', sa.Text(), nullable=True),
    sa.Column('score', sa.SmallInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("decision in ('approved', 'changes_requested', 'rejected')", name=op.f('ck_mission_reviews_decision')),
    sa.CheckConstraint('score is null or score between 0 and 100', name=op.f('ck_mission_reviews_score')),
    sa.ForeignKeyConstraint(['mentee_id'], ['users.id'], name=op.f('fk_mission_reviews_mentee_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mentor_id'], ['users.id'], name=op.f('fk_mission_reviews_mentor_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['submission_id'], ['mission_submissions.id'], name=op.f('fk_mission_reviews_submission_id_mission_submissions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mission_reviews')),
    sa.UniqueConstraint('submission_id', name=op.f('uq_mission_reviews_submission_id'))
    )
    op.create_index('ix_mission_reviews_mentee_id', 'mission_reviews', ['mentee_id'], unique=False)
    op.create_table('session_feedback',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('session_id', sa.UUID(), nullable=False),
    sa.Column('mentor_id', sa.UUID(), nullable=False),
    sa.Column('mentee_id', sa.UUID(), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('rating between 1 and 5', name=op.f('ck_session_feedback_rating')),
    sa.ForeignKeyConstraint(['mentee_id'], ['users.id'], name=op.f('fk_session_feedback_mentee_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['mentor_id'], ['users.id'], name=op.f('fk_session_feedback_mentor_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_session_feedback_session_id_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_session_feedback')),
    sa.UniqueConstraint('session_id', name=op.f('uq_session_feedback_session_id'))
    )
    op.create_index('ix_session_feedback_mentee_id', 'session_feedback', ['mentee_id'], unique=False)
    op.create_index('ix_session_feedback_mentor_id', 'session_feedback', ['mentor_id'], unique=False)
    op.create_table('webhook_attempts',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('delivery_id', sa.UUID(), nullable=False),
    sa.Column('attempted_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts'))
    )
    op.create_index('ix_webhook_attempts_delivery_id', 'webhook_attempts', ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhook_attempts_delivery_id', table_name='webhook_attempts')
    op.drop_table('webhook_attempts')
    op.drop_index('ix_session_feedback_mentor_id', table_name='session_feedback')
    op.drop_index('ix_session_feedback_mentee_id', table_name='session_feedback')
    op.drop_table('session_feedback')
    op.drop_index('ix_mission_reviews_mentee_id', table_name='mission_reviews')
    op.drop_table('mission_reviews')
    op.drop_index('ix_work_items_open_due_at', table_name='work_items', postgresql_where=sa.text("status <> 'done'"))
    op.drop_index('ix_work_items_mentee_id_status', table_name='work_items')
    op.drop_index('ix_work_items_completed_at', table_name='work_items', postgresql_where=sa.text('completed_at is not null'))
    op.drop_table('work_items')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_sessions_mentor_id_starts_at', table_name='sessions')
    op.drop_index('ix_sessions_mentee_id_starts_at', table_name='sessions')
    op.drop_table('sessions')
    op.drop_index('ix_readiness_history_mentee_id_recorded_at', table_name='readiness_history')
    op.drop_table('readiness_history')
    op.drop_index('ix_mission_submissions_mentee_id_submitted_at', table_name='mission_submissions')
    op.drop_table('mission_submissions')
    op.drop_index('ix_mentee_signals_mentee_id_kind_occurred_at', table_name='mentee_signals')
    op.drop_table('mentee_signals')
    op.drop_index('ix_flags_status_severity_created_at', table_name='flags')
    op.drop_index('ix_flags_mentee_id_status', table_name='flags')
    op.drop_table('flags')
    op.drop_table('capacity_alerts')
    op.drop_index('uq_assignments_active_mentee', table_name='assignments', postgresql_where=sa.text('ended_at is null'))
    op.drop_index('ix_assignments_mentee_id', table_name='assignments')
    op.drop_index('ix_assignments_active_mentor', table_name='assignments', postgresql_where=sa.text('ended_at is null'))
    op.drop_table('assignments')
    op.drop_table('webhook_endpoints')
    op.drop_index('uq_users_email', table_name='users')
    op.drop_index('ix_users_mentors', table_name='users', postgresql_where=sa.text('is_mentor'))
    op.drop_table('users')
    op.drop_table('programme_metrics')
    op.drop_index('ix_outbox_events_pending', table_name='outbox_events', postgresql_where=sa.text('published_at is null'))
    op.drop_table('outbox_events')
    op.drop_table('matching_runs')
    op.drop_table('inbox_events')
