"""Retention indexes and the programme's daily metric history.

Retention deletes old inbox rows, published outbox rows and webhook attempts in batches,
oldest first: each needs an index on its age column so a batch is a short range scan.
`programme_metrics_daily` keeps one row per UTC day and metric (the day's latest value),
written by the workers, read by staff.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("create index ix_inbox_events_received_at on inbox_events (received_at)")
    op.execute("create index ix_outbox_events_published_at on outbox_events (published_at) "
               "where published_at is not null")
    op.execute("create index ix_webhook_attempts_attempted_at on webhook_attempts "
               "(attempted_at)")
    op.execute("""
        create table programme_metrics_daily (
            day date not null,
            name varchar(64) not null,
            value double precision,
            details jsonb not null default '{}'::jsonb,
            computed_at timestamptz not null,
            primary key (day, name)
        )""")
    op.execute("alter table programme_metrics_daily enable row level security")
    op.execute("alter table programme_metrics_daily force row level security")
    op.execute("create policy programme_metrics_daily_staff on programme_metrics_daily "
               "for select using ((select app_role()) in ('director', 'admin'))")
    for role in ("mentorship_app", "mentorship_worker"):
        op.execute(f"grant select, insert, update, delete on programme_metrics_daily to {role}")


def downgrade() -> None:
    op.execute("drop table if exists programme_metrics_daily")
    op.execute("drop index if exists ix_webhook_attempts_attempted_at")
    op.execute("drop index if exists ix_outbox_events_published_at")
    op.execute("drop index if exists ix_inbox_events_received_at")
