"""Roles and row-level security.

- `mentorship_app`: the API's login role. Not superuser, no BYPASSRLS, owns nothing: RLS
  decides every row it sees.
- `mentorship_worker`: the arq workers' login role. BYPASSRLS, so workers act as the
  system; the API never connects with it, so no request can become the system.
Both are cluster-wide and may already exist (another database of the same cluster):
created only if missing, and on downgrade dropped only if nothing else uses them.

Each request sets `app.user_id` and `app.role` with set_config(..., true). Policies read them
through `app_user_id()` / `app_role()` wrapped in a sub-select, so Postgres evaluates them
once per query; an unset value is NULL, which matches no row.

Visibility (CONTRACT.md "Roles and visibility"):
- director, admin: everything.
- mentor: own profile; actively assigned mentees and their work items, flags, submissions,
  reviews, readiness and signals; own sessions and their feedback.
- mentee: own profile and current mentor's; own assignment, sessions and feedback. Never
  flags, work items or risk inputs (the at-risk banner comes from `mentee_at_risk()`).
- service: provisions users and posts events (what ingestion needs), nothing else.

Revision ID: 0002
Revises: 0001
"""

import os
from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"

TABLES = [
    "users", "assignments", "sessions", "session_feedback", "work_items",
    "mission_submissions", "mission_reviews", "flags", "readiness_history", "mentee_signals",
    "inbox_events", "outbox_events", "webhook_endpoints", "webhook_deliveries",
    "webhook_attempts", "matching_runs", "capacity_alerts", "programme_metrics",
]

ME = "(select app_user_id())"
ROLE = "(select app_role())"
STAFF = f"{ROLE} in ('director', 'admin')"
SERVICE = f"{ROLE} = 'service'"
ADMIN = f"{ROLE} = 'admin'"
MY_MENTEES = (
    "(select a.mentee_id from assignments a "
    f"where a.mentor_id = {ME} and a.ended_at is null)"
)
MY_MENTOR = (
    "(select a.mentor_id from assignments a "
    f"where a.mentee_id = {ME} and a.ended_at is null)"
)

# table -> list of (policy name, command, USING, WITH CHECK)
POLICIES: dict[str, list[tuple[str, str, str | None, str | None]]] = {
    "users": [
        ("users_select", "SELECT",
         f"{STAFF} or {SERVICE} or id = {ME} or id in {MY_MENTEES} or id in {MY_MENTOR}", None),
        ("users_insert", "INSERT", None, f"{STAFF} or {SERVICE}"),
        ("users_update", "UPDATE", f"{STAFF} or {SERVICE} or id = {ME}",
         f"{STAFF} or {SERVICE} or id = {ME}"),
        ("users_delete", "DELETE", ADMIN, None),
    ],
    "assignments": [
        ("assignments_select", "SELECT",
         f"{STAFF} or {SERVICE} or mentor_id = {ME} or mentee_id = {ME}", None),
        ("assignments_write", "ALL", STAFF, STAFF),
    ],
    "sessions": [
        ("sessions_select", "SELECT", f"{STAFF} or mentor_id = {ME} or mentee_id = {ME}", None),
        ("sessions_insert", "INSERT", None,
         f"{STAFF} or (mentor_id = {ME} and mentee_id in {MY_MENTEES})"),
        ("sessions_update", "UPDATE", f"{STAFF} or mentor_id = {ME}",
         f"{STAFF} or (mentor_id = {ME} and mentee_id in {MY_MENTEES})"),
        ("sessions_delete", "DELETE", ADMIN, None),
    ],
    "session_feedback": [
        ("feedback_select", "SELECT", f"{STAFF} or mentor_id = {ME} or mentee_id = {ME}", None),
        ("feedback_insert", "INSERT", None,
         f"{STAFF} or (mentee_id = {ME} and exists (select 1 from sessions s "
         f"where s.id = session_id and s.mentee_id = {ME} and s.mentor_id = mentor_id))"),
        ("feedback_delete", "DELETE", ADMIN, None),
    ],
    "work_items": [
        ("work_items_select", "SELECT", f"{STAFF} or {SERVICE} or mentee_id in {MY_MENTEES}",
         None),
        ("work_items_insert", "INSERT", None,
         f"{STAFF} or {SERVICE} or mentee_id in {MY_MENTEES}"),
        ("work_items_update", "UPDATE", f"{STAFF} or {SERVICE} or mentee_id in {MY_MENTEES}",
         f"{STAFF} or {SERVICE} or mentee_id in {MY_MENTEES}"),
        ("work_items_delete", "DELETE", ADMIN, None),
    ],
    "mission_submissions": [
        ("submissions_select", "SELECT", f"{STAFF} or {SERVICE} or mentee_id in {MY_MENTEES}",
         None),
        ("submissions_insert", "INSERT", None, f"{STAFF} or {SERVICE}"),
        ("submissions_update", "UPDATE", f"{STAFF} or {SERVICE} or mentee_id in {MY_MENTEES}",
         f"{STAFF} or {SERVICE} or mentee_id in {MY_MENTEES}"),
        ("submissions_delete", "DELETE", ADMIN, None),
    ],
    "mission_reviews": [
        ("reviews_select", "SELECT", f"{STAFF} or mentee_id in {MY_MENTEES}", None),
        ("reviews_insert", "INSERT", None,
         f"{STAFF} or (mentor_id = {ME} and mentee_id in {MY_MENTEES})"),
        ("reviews_delete", "DELETE", ADMIN, None),
    ],
    "flags": [
        ("flags_select", "SELECT", f"{STAFF} or mentee_id in {MY_MENTEES}", None),
        ("flags_insert", "INSERT", None,
         f"{STAFF} or (raised_by = {ME} and mentee_id in {MY_MENTEES})"),
        ("flags_update", "UPDATE", f"{STAFF} or mentee_id in {MY_MENTEES}",
         f"{STAFF} or mentee_id in {MY_MENTEES}"),
        ("flags_delete", "DELETE", ADMIN, None),
    ],
    "readiness_history": [
        ("readiness_select", "SELECT", f"{STAFF} or {SERVICE} or mentee_id in {MY_MENTEES}",
         None),
        ("readiness_insert", "INSERT", None, f"{STAFF} or {SERVICE}"),
    ],
    "mentee_signals": [
        ("signals_select", "SELECT", f"{STAFF} or {SERVICE} or mentee_id in {MY_MENTEES}", None),
        ("signals_insert", "INSERT", None, f"{STAFF} or {SERVICE}"),
    ],
    "inbox_events": [
        ("inbox_select", "SELECT", f"{ADMIN} or {SERVICE}", None),
        ("inbox_insert", "INSERT", None, f"{ADMIN} or {SERVICE}"),
    ],
    # Any authenticated change writes its outbound events; only admins read them back.
    "outbox_events": [
        ("outbox_select", "SELECT", ADMIN, None),
        ("outbox_insert", "INSERT", None, f"{ME} is not null"),
    ],
    "webhook_endpoints": [("webhook_endpoints_admin", "ALL", ADMIN, ADMIN)],
    "webhook_deliveries": [("webhook_deliveries_admin", "SELECT", ADMIN, None)],
    "webhook_attempts": [("webhook_attempts_admin", "SELECT", ADMIN, None)],
    "matching_runs": [
        ("matching_runs_staff", "SELECT", STAFF, None),
        ("matching_runs_insert", "INSERT", None, STAFF),
    ],
    "capacity_alerts": [("capacity_alerts_staff", "SELECT", STAFF, None)],
    "programme_metrics": [("programme_metrics_staff", "SELECT", STAFF, None)],
}


def _ensure_role(name: str, attributes: str, bypass_rls: bool, password_env: str) -> None:
    # ALTER only when the attributes differ: concurrent migrations of several databases on
    # one cluster (parallel test runs) would otherwise collide on the same pg_authid row.
    op.execute(f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
            CREATE ROLE {name} LOGIN {attributes};
          ELSIF EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}' AND (
              rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR NOT rolcanlogin
              OR rolbypassrls <> {str(bypass_rls).lower()})) THEN
            ALTER ROLE {name} LOGIN {attributes};
          END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- created concurrently
        END $$""")
    password = os.environ.get(password_env)
    if password:
        quoted = password.replace("'", "''")
        op.execute(f"ALTER ROLE {name} PASSWORD '{quoted}'")


def upgrade() -> None:
    base = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION"
    _ensure_role(APP, f"{base} NOBYPASSRLS", False, "APP_DB_PASSWORD")
    _ensure_role(WORKER, f"{base} BYPASSRLS", True, "WORKER_DB_PASSWORD")

    op.execute("""
        CREATE FUNCTION app_user_id() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$""")
    op.execute("""
        CREATE FUNCTION app_role() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT nullif(current_setting('app.role', true), '') $$""")

    for role in (APP, WORKER):
        op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}")
        op.execute(f"GRANT EXECUTE ON FUNCTION app_user_id(), app_role() TO {role}")
    # The ledgers the API may only append to or read.
    op.execute(f"REVOKE UPDATE, DELETE ON inbox_events, readiness_history, mentee_signals "
               f"FROM {APP}")

    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        for name, command, using, check in POLICIES.get(table, []):
            sql = f"CREATE POLICY {name} ON {table} FOR {command}"
            if using:
                sql += f" USING ({using})"
            if check:
                sql += f" WITH CHECK ({check})"
            op.execute(sql)


def downgrade() -> None:
    for table in TABLES:
        for name, *_ in POLICIES.get(table, []):
            op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for role in (APP, WORKER):
        op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}")
        op.execute(f"REVOKE ALL ON SCHEMA public FROM {role}")
    op.execute("DROP FUNCTION app_role()")
    op.execute("DROP FUNCTION app_user_id()")
    for role in (APP, WORKER):
        # Roles are cluster-wide: keep them while another database still grants them rights.
        op.execute(f"""
            DO $$ BEGIN
              DROP ROLE IF EXISTS {role};
            EXCEPTION WHEN dependent_objects_still_exist THEN
              RAISE NOTICE 'role {role} still used elsewhere, kept';
            END $$""")
