"""`director_ids()`: who gets urgent notifications, readable by any API caller.

Raising a flag notifies every director (`flag.raised` carries `director_ids`), but RLS hides
other users' rows from a mentor, so the mentor's own transaction cannot list directors.
This SECURITY DEFINER function returns only the ids (nothing else of those rows), runs with
its owner's rights (the migration account, which can bypass RLS: it created the BYPASSRLS
worker role in 0002) and a pinned search_path. Only the API and worker roles may execute it.

Revision ID: 0006
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION director_ids() RETURNS uuid[]
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, pg_temp
        AS $$ SELECT coalesce(array_agg(u.id ORDER BY u.id), '{}'::uuid[])
                FROM public.users u WHERE u.role = 'director' $$""")
    # A definer that cannot bypass RLS would silently see no director under FORCE RLS:
    # hand the function to the BYPASSRLS worker role then (fails loudly if not allowed).
    op.execute("""
        DO $$ BEGIN
          IF NOT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
          THEN
            ALTER FUNCTION director_ids() OWNER TO mentorship_worker;
          END IF;
        END $$""")
    op.execute("REVOKE ALL ON FUNCTION director_ids() FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION director_ids() TO mentorship_app, mentorship_worker")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS director_ids()")
