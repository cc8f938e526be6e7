"""Narrow SECURITY DEFINER functions for operations.

The API's role reads what RLS lets a caller see, and some operational reads have no caller:
the Prometheus scrape (outbox backlog, programme metrics) and the admin UI's login (is this
email a director's or an admin's?). Rather than giving the API the workers' BYPASSRLS
credentials, each read is one function owned by `mentorship_worker` (so it runs with
BYPASSRLS) that returns only aggregates or the two columns the login needs; only
`mentorship_app` may execute them.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"

FUNCTIONS = {
    # Unpublished outbox rows: count and oldest (served by ix_outbox_events_pending).
    "ops_outbox_backlog()": """
        ops_outbox_backlog(OUT pending bigint, OUT oldest_created_at timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
        $$ SELECT count(*), min(created_at) FROM public.outbox_events
            WHERE published_at IS NULL $$""",
    # The five programme metrics as the refresh job last wrote them (no details).
    "ops_programme_metrics()": """
        ops_programme_metrics()
        RETURNS TABLE (name text, value double precision, computed_at timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
        $$ SELECT m.name, m.value, m.computed_at FROM public.programme_metrics m $$""",
    # Admin UI login: the user with this email, only if a director or an admin.
    "ops_staff_user(text)": """
        ops_staff_user(p_email text) RETURNS TABLE (id uuid, role text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS
        $$ SELECT u.id, u.role::text FROM public.users u
            WHERE lower(u.email) = lower(p_email) AND u.role IN ('director', 'admin') $$""",
}


def upgrade() -> None:
    for signature, definition in FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {definition}")
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {WORKER}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP}")


def downgrade() -> None:
    for signature in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
