"""Who a token is: users become active or inactive, and one function tells the API.

- `users.active` (default true) and `users.deactivated_at`: a deactivated user keeps their
  row (history, sessions, reviews) but no token of theirs is honoured.
- `auth_identity(uuid)`: the current role and active flag of one user, for the token check
  (app/core/identity.py). SECURITY DEFINER owned by `mentorship_worker` (BYPASSRLS, the
  convention of 0003/0005), so it answers before any RLS identity is set; it returns two
  columns of one row and nothing else. Only the API and worker roles may execute it.
- `ops_staff_user(text)` (admin UI login) and `director_ids()` (urgent notifications) now
  skip deactivated users.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"

AUTH_IDENTITY = """
CREATE FUNCTION auth_identity(p_user_id uuid) RETURNS TABLE (role text, active boolean)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
$$ SELECT u.role::text, u.active FROM public.users u WHERE u.id = p_user_id $$"""


def _staff_user(active_only: bool) -> str:
    extra = " AND u.active" if active_only else ""
    return f"""
CREATE OR REPLACE FUNCTION ops_staff_user(p_email text) RETURNS TABLE (id uuid, role text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
$$ SELECT u.id, u.role::text FROM public.users u
    WHERE lower(u.email) = lower(p_email) AND u.role IN ('director', 'admin'){extra} $$"""


def _director_ids(active_only: bool) -> str:
    extra = " AND u.active" if active_only else ""
    return f"""
CREATE OR REPLACE FUNCTION director_ids() RETURNS uuid[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(array_agg(u.id ORDER BY u.id), '{{}}'::uuid[])
        FROM public.users u WHERE u.role = 'director'{extra} $$"""


def upgrade() -> None:
    op.add_column("users", sa.Column("active", sa.Boolean(), server_default=sa.text("true"),
                                     nullable=False))
    op.add_column("users", sa.Column("deactivated_at", sa.DateTime(timezone=True),
                                     nullable=True))
    op.execute(AUTH_IDENTITY)
    op.execute(f"ALTER FUNCTION auth_identity(uuid) OWNER TO {WORKER}")
    op.execute("REVOKE ALL ON FUNCTION auth_identity(uuid) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION auth_identity(uuid) TO {APP}, {WORKER}")
    op.execute(_staff_user(active_only=True))
    op.execute(_director_ids(active_only=True))


def downgrade() -> None:
    op.execute(_director_ids(active_only=False))
    op.execute(_staff_user(active_only=False))
    op.execute("DROP FUNCTION IF EXISTS auth_identity(uuid)")
    op.drop_column("users", "deactivated_at")
    op.drop_column("users", "active")
