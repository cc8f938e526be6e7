"""Index for the SLA prioritizer's sweep.

Every 5 minutes the sweep looks for unfinished items whose next SLA step is due: 75 % of
the window passed (raise the priority once) or `due_at` passed (mark overdue). The index
holds only items with a step still pending, keyed by the instant of that step (an immutable
SQL function: UTC arithmetic only), so a sweep over millions of work items is one
short range scan over the rows it changes.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Copied from app/models/work_item.py (a migration must not change when the model does).
PENDING_SLA_STEP = "status <> 'done' and (escalated_at is null or not overdue)"

# Immutable for real: only UTC arithmetic on its arguments (no session time zone).
NEXT_SLA_STEP_FUNCTION = """
create or replace function work_item_next_sla_step(
    created_at timestamptz, due_at timestamptz, escalated_at timestamptz
) returns timestamp language sql immutable parallel safe as $$
    select case when escalated_at is null
                then (created_at at time zone 'UTC')
                     + ((due_at at time zone 'UTC') - (created_at at time zone 'UTC')) * 0.75
                else due_at at time zone 'UTC' end
$$
"""


def upgrade() -> None:
    op.execute(NEXT_SLA_STEP_FUNCTION)
    op.create_index("ix_work_items_sla_next_step", "work_items",
                    [sa.text("work_item_next_sla_step(created_at, due_at, escalated_at)")],
                    unique=False, postgresql_where=sa.text(PENDING_SLA_STEP))


def downgrade() -> None:
    op.drop_index("ix_work_items_sla_next_step", table_name="work_items")
    op.execute("drop function if exists work_item_next_sla_step(timestamptz, timestamptz, "
               "timestamptz)")
