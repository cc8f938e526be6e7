"""Calendar subscriptions that outlive a JWT: one feed token per user, stored hashed.

`calendar_feed_tokens`: the SHA-256 of the user's current feed token (the token itself is
shown once, in the subscription URL). One row per user: issuing a new token replaces the
hash (the old URL stops working), deleting the row revokes it. RLS: a user reads and
writes only their own row; staff read all.

`calendar_feed_owner(hash)`: who a feed token belongs to, for the feed route, which has no
JWT and so no RLS identity yet. SECURITY DEFINER owned by `mentorship_worker` (the
convention of 0003/0005/0006); it answers only for an active mentor or mentee (a
deactivated user's feed stops, and so does one whose role changed), and returns the id and
the role, nothing else.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"
ME = "(select app_user_id())"
STAFF = "(select app_role()) in ('director', 'admin')"

OWNER = """
CREATE FUNCTION calendar_feed_owner(p_hash bytea) RETURNS TABLE (user_id uuid, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT u.id, u.role::text
    FROM public.calendar_feed_tokens t JOIN public.users u ON u.id = t.user_id
   WHERE t.token_hash = p_hash AND u.role IN ('mentor', 'mentee')
     AND u.active
$$"""


def upgrade() -> None:
    op.create_table(
        "calendar_feed_tokens",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_calendar_feed_tokens_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_calendar_feed_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_feed_tokens_token_hash")),
    )
    op.execute("ALTER TABLE calendar_feed_tokens ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE calendar_feed_tokens FORCE ROW LEVEL SECURITY")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON calendar_feed_tokens TO {APP}, {WORKER}")
    op.execute(f"CREATE POLICY feed_tokens_select ON calendar_feed_tokens FOR SELECT "
               f"USING ({STAFF} or user_id = {ME})")
    op.execute(f"CREATE POLICY feed_tokens_write ON calendar_feed_tokens FOR ALL "
               f"USING (user_id = {ME}) WITH CHECK (user_id = {ME})")
    op.execute(OWNER)
    op.execute(f"ALTER FUNCTION calendar_feed_owner(bytea) OWNER TO {WORKER}")
    op.execute("REVOKE ALL ON FUNCTION calendar_feed_owner(bytea) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION calendar_feed_owner(bytea) TO {APP}, {WORKER}")


def downgrade() -> None:
    op.execute("DROP FUNCTION calendar_feed_owner(bytea)")
    op.drop_table("calendar_feed_tokens")
