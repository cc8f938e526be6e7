"""sessions.video_meeting_id: the provider's id of the session's meeting (Zoom), so a
reschedule moves the meeting and a cancellation deletes it. NULL for Jitsi-style rooms,
which need no remote state.

Revision ID: 0007
Revises: 0009 (chained after main's 0009 when main was merged in)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("video_meeting_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("sessions", "video_meeting_id")
