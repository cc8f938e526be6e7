"""sessions.video_meeting_id: the provider's id of the session's meeting (Zoom), so a
reschedule moves the meeting and a cancellation deletes it. NULL for Jitsi-style rooms,
which need no remote state.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("sessions", sa.Column("video_meeting_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("sessions", "video_meeting_id")
