"""Staff transactions may insert outbox rows directly, for set-based emitters.

A director's matching publish writes thousands of `assignment.created` events in the same
statement as the assignments (`insert_events_sql`), which `outbox_emit()` one row at a time
cannot do at that size. Directors and admins may already address any user through
`outbox_emit()`, so a direct INSERT gives them nothing more; mentees, mentors and services
still write the outbox only through `outbox_emit()` (migration 0017).

Revision ID: 0018
Revises: 0017
"""

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("GRANT INSERT ON outbox_events TO mentorship_director, mentorship_admin")


def downgrade() -> None:
    op.execute("REVOKE INSERT ON outbox_events FROM mentorship_director, mentorship_admin")
