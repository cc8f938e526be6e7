"""`director_ids()`: who gets urgent notifications, readable by any API caller.

Raising a flag notifies every director (`flag.raised` carries `director_ids`), but RLS hides
other users' rows from a mentor, so the mentor's own transaction cannot list directors.
This SECURITY DEFINER function returns only the ids (nothing else of those rows), is owned by
`mentorship_worker` (BYPASSRLS, so FORCE RLS does not hide the directors from it; the same
convention as the ops functions) and pins its search_path. Only the API and worker roles may
execute it.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION director_ids() RETURNS uuid[]
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $$ SELECT coalesce(array_agg(u.id ORDER BY u.id), '{}'::uuid[])
                FROM public.users u WHERE u.role = 'director' $$""")
    # A definer without BYPASSRLS would silently see no director under FORCE RLS.
    op.execute("ALTER FUNCTION director_ids() OWNER TO mentorship_worker")
    op.execute("REVOKE ALL ON FUNCTION director_ids() FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION director_ids() TO mentorship_app, mentorship_worker")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS director_ids()")
