"""Defence in depth: the database itself knows who the request is (finding F8).

Every API request connects as `mentorship_app`. Until now its identity was two settings
(`app.user_id`, `app.role`) that any statement may change with `set_config`: one injected
`set_config('app.role', 'admin', true)` would have been full admin, and a mentee's
transaction could update its own `users.role` or write outbox rows addressed to anyone
(a forged, signed webhook).

The choice: per-identity roles, switched with SET LOCAL ROLE, plus a trigger for the
column rules (rather than triggers alone, which could only trust the forgeable settings).
- NOLOGIN roles `mentorship_mentee`, `mentorship_mentor`, `mentorship_director`,
  `mentorship_admin`, `mentorship_service`, each granted to `mentorship_app`. A request's
  one setup statement is `select set_config('role', <identity role>, true),
  set_config('app.user_id', ...), set_config('app.role', ...)` (one round trip;
  `set_config('role', ..., true)` is SET LOCAL ROLE).
- `app_role()` now reads the role in force (`current_setting('role')`, which a SECURITY
  DEFINER function also sees), no longer `app.role`; `app_user_id()` is NULL unless an
  identity role is in force. So `set_config('app.role', 'admin')` grants nothing, and a
  plain `mentorship_app` session sees and writes nothing under RLS.
- The identity roles get the table and function privileges `mentorship_app` has (copied
  here), except writing the outbox and the inbox: those go through SECURITY DEFINER
  functions that check the caller. `outbox_emit()` lets a mentee or a mentor address only
  themselves, the people of their (current) mentees' assignments, previous mentors
  included, and directors; `inbox_record()` is for `service` and `admin` (and the
  workers).
- A BEFORE UPDATE trigger on `users` (`users_guard`): a mentee or mentor identity may
  update only its own row, never `id`, `role`, `active`, `email`, `tier`, `is_mentor` (or
  the erasure/deactivation markers, once they exist); a mentee none of the `mentor_*`
  fields; a mentor keeps its capacity within the API's limits (0-168 weekly slots,
  0-1000 mentees). Columns other migrations add are allowed unless listed here.

Still possible for an injected statement (written down, not hidden): switching to another
identity role with `set_config('role', ...)` (`mentorship_app` must be a member of each to
take it) and choosing `app.user_id`. The gain: it now takes a deliberate second step, the
column rules hold for whichever mentee or mentor identity is in force, and outbox rows
cannot be addressed outside the caller's relationships.

SECURITY DEFINER functions of earlier migrations that checked the forgeable `app.role`
(audit redaction, erasure) now check `app_role()`.

Later migrations that grant to `mentorship_app` must grant the same to the identity roles
(`IDENTITY_ROLES` below); tests/core/test_identity_roles.py fails otherwise.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"
IDENTITY_ROLES = {
    "mentee": "mentorship_mentee", "mentor": "mentorship_mentor",
    "director": "mentorship_director", "admin": "mentorship_admin",
    "service": "mentorship_service",
}
ALL_IDENTITIES = ", ".join(IDENTITY_ROLES.values())

_ROLE_CASE = " ".join(f"WHEN '{db}' THEN '{name}'" for name, db in IDENTITY_ROLES.items())

APP_ROLE = f"""
    CREATE OR REPLACE FUNCTION app_role() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
    $$ SELECT CASE current_setting('role') {_ROLE_CASE} END $$"""
APP_USER_ID = """
    CREATE OR REPLACE FUNCTION app_user_id() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE AS
    $$ SELECT CASE WHEN public.app_role() IS NOT NULL
                   THEN nullif(current_setting('app.user_id', true), '')::uuid END $$"""

OUTBOX_EMIT = f"""
CREATE FUNCTION outbox_emit(p_id uuid, p_type text, p_occurred_at timestamptz, p_data jsonb,
                            p_refresh_priority text, p_recipients uuid[]) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role text := public.app_role();
  v_me uuid := public.app_user_id();
  v_others uuid[];
BEGIN
  IF v_role IS NULL AND session_user <> '{WORKER}' THEN
    RAISE EXCEPTION 'outbox_emit needs an identity' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF p_type !~ '^[a-z][a-z_]*(\\.[a-z][a-z_]*)+$' OR jsonb_typeof(p_data) <> 'object' THEN
    RAISE EXCEPTION 'outbox_emit: malformed event' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF v_role IN ('mentee', 'mentor') THEN
    -- Recipients other than the caller and the people of its mentees' assignments (a
    -- mentee's: itself; a mentor's: its current mentees), their mentors past and present
    -- included, must be directors.
    SELECT coalesce(array_agg(r), '{{}}') INTO v_others FROM unnest(p_recipients) r
     WHERE r IS DISTINCT FROM v_me
       AND NOT EXISTS (
             SELECT 1 FROM public.assignments a
              WHERE (a.mentee_id = r OR a.mentor_id = r)
                AND a.mentee_id IN (
                      SELECT v_me WHERE v_role = 'mentee'
                      UNION ALL
                      SELECT c.mentee_id FROM public.assignments c
                       WHERE v_role = 'mentor' AND c.mentor_id = v_me
                         AND c.ended_at IS NULL));
    IF cardinality(v_others) > 0 AND (SELECT count(*) FROM public.users u
        WHERE u.id = ANY (v_others) AND u.role = 'director') < cardinality(v_others) THEN
      RAISE EXCEPTION 'outbox_emit: a recipient outside the caller''s relationships'
        USING ERRCODE = 'insufficient_privilege';
    END IF;
  END IF;
  INSERT INTO public.outbox_events (id, type, occurred_at, data, refresh_priority, recipients)
  VALUES (p_id, p_type, p_occurred_at, p_data, p_refresh_priority, p_recipients);
END $$"""

INBOX_RECORD = f"""
CREATE FUNCTION inbox_record(p_ids uuid[], p_types text[], p_sources text[],
                             p_occurred_at timestamptz[]) RETURNS SETOF uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF coalesce(public.app_role() IN ('service', 'admin'), session_user = '{WORKER}') IS NOT TRUE
  THEN
    RAISE EXCEPTION 'inbox_record is for service callers' USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- In id order, so concurrent batches sharing ids wait on each other in the same order.
  RETURN QUERY
    WITH added AS (
      INSERT INTO public.inbox_events (id, type, source, occurred_at)
      SELECT i, t, s, o FROM unnest(p_ids, p_types, p_sources, p_occurred_at) AS x(i, t, s, o)
       ORDER BY i
      ON CONFLICT (id) DO NOTHING RETURNING id)
    SELECT id FROM added;
END $$"""

_FORGEABLE = "coalesce(current_setting('app.role', true), '') <> 'admin'"
_BOUND = "coalesce(public.app_role(), '') <> 'admin'"

USERS_GUARD = """
CREATE FUNCTION users_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role text := public.app_role();
  v_new jsonb;
  v_old jsonb;
  k text;
BEGIN
  IF v_role IS NULL OR v_role NOT IN ('mentee', 'mentor') THEN
    RETURN NEW;
  END IF;
  IF OLD.id IS DISTINCT FROM public.app_user_id() THEN
    RAISE EXCEPTION 'a % may update only their own user row', v_role
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  v_new := to_jsonb(NEW);
  v_old := to_jsonb(OLD);
  FOR k IN SELECT jsonb_object_keys(v_new) LOOP
    IF v_new -> k IS DISTINCT FROM v_old -> k AND (
         k IN ('id', 'role', 'active', 'email', 'tier', 'is_mentor', 'created_at',
               'deactivated_at', 'erased_at')
         OR (v_role = 'mentee' AND k LIKE 'mentor\\_%')) THEN
      RAISE EXCEPTION 'a % may not change users.%', v_role, k
        USING ERRCODE = 'insufficient_privilege';
    END IF;
  END LOOP;
  IF v_role = 'mentor' AND (NEW.mentor_capacity_weekly NOT BETWEEN 0 AND 168
                            OR NEW.mentor_max_mentees NOT BETWEEN 0 AND 1000) THEN
    RAISE EXCEPTION 'mentor capacity out of range' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$"""


def _ensure_identity_role(name: str) -> None:
    # Cluster-wide and possibly created by a concurrent migration of another database.
    op.execute(f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}') THEN
            CREATE ROLE {name} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
          END IF;
          IF NOT pg_has_role('{APP}', '{name}', 'MEMBER') THEN
            GRANT {name} TO {APP};
          END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$""")


def upgrade() -> None:
    for name in IDENTITY_ROLES.values():
        _ensure_identity_role(name)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {ALL_IDENTITIES}")
    # The identity roles may do what mentorship_app may (RLS still decides which rows)...
    op.execute(f"""
        DO $$ DECLARE r record; BEGIN
          FOR r IN SELECT table_name, privilege_type FROM information_schema.role_table_grants
                    WHERE grantee = '{APP}' AND table_schema = 'public'
                      AND table_name <> 'alembic_version' LOOP
            EXECUTE format('GRANT %s ON public.%I TO {ALL_IDENTITIES}',
                           r.privilege_type, r.table_name);
          END LOOP;
          FOR r IN SELECT p.oid::regprocedure AS signature
                     FROM pg_proc p, aclexplode(p.proacl) acl
                    WHERE p.pronamespace = 'public'::regnamespace
                      AND acl.grantee = '{APP}'::regrole AND acl.privilege_type = 'EXECUTE' LOOP
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO {ALL_IDENTITIES}', r.signature);
          END LOOP;
        END $$""")
    # ...except writing the outbox and the inbox, which only the functions below do.
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON outbox_events, inbox_events "
               f"FROM {APP}, {ALL_IDENTITIES}")
    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {APP}")

    op.execute(APP_ROLE)
    op.execute(APP_USER_ID)
    for sql, signature in (
        (OUTBOX_EMIT, "outbox_emit(uuid, text, timestamptz, jsonb, text, uuid[])"),
        (INBOX_RECORD, "inbox_record(uuid[], text[], text[], timestamptz[])"),
    ):
        op.execute(sql)
        # Owned by the BYPASSRLS worker role (as the other definer functions): FORCE RLS
        # would otherwise hide the assignments and users they check.
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {WORKER}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP}, {WORKER}, {ALL_IDENTITIES}")
    # Definer functions of earlier migrations (audit redaction, erasure) checked the
    # forgeable `app.role`: they now check `app_role()`.
    op.execute(f"""
        DO $$ DECLARE f record; BEGIN
          FOR f IN SELECT p.oid FROM pg_proc p
                    WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
                      AND p.prosrc LIKE $p$%{_FORGEABLE}%$p$ LOOP
            EXECUTE replace(pg_get_functiondef(f.oid), $q${_FORGEABLE}$q$, $q${_BOUND}$q$);
          END LOOP;
        END $$""")
    op.execute(USERS_GUARD)
    op.execute("CREATE TRIGGER users_guard BEFORE UPDATE ON users "
               "FOR EACH ROW EXECUTE FUNCTION users_guard()")


def downgrade() -> None:
    op.execute(f"""
        DO $$ DECLARE f record; BEGIN
          FOR f IN SELECT p.oid FROM pg_proc p
                    WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
                      AND p.prosrc LIKE $p$%{_BOUND}%$p$ LOOP
            EXECUTE replace(pg_get_functiondef(f.oid), $q${_BOUND}$q$, $q${_FORGEABLE}$q$);
          END LOOP;
        END $$""")
    op.execute("DROP TRIGGER IF EXISTS users_guard ON users")
    op.execute("DROP FUNCTION IF EXISTS users_guard()")
    op.execute("DROP FUNCTION IF EXISTS inbox_record(uuid[], text[], text[], timestamptz[])")
    op.execute("DROP FUNCTION IF EXISTS "
               "outbox_emit(uuid, text, timestamptz, jsonb, text, uuid[])")
    op.execute("""
        CREATE OR REPLACE FUNCTION app_user_id() RETURNS uuid LANGUAGE sql STABLE PARALLEL SAFE
        AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$""")
    op.execute("""
        CREATE OR REPLACE FUNCTION app_role() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT nullif(current_setting('app.role', true), '') $$""")
    op.execute(f"GRANT INSERT ON outbox_events, inbox_events TO {APP}")
    op.execute(f"GRANT INSERT, UPDATE, DELETE ON alembic_version TO {APP}")
    op.execute(f"""
        DO $$ BEGIN
          REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {ALL_IDENTITIES};
          REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM {ALL_IDENTITIES};
          REVOKE ALL ON SCHEMA public FROM {ALL_IDENTITIES};
        END $$""")
    for name in IDENTITY_ROLES.values():
        # Cluster-wide: kept while another database still grants them rights.
        op.execute(f"""
            DO $$ BEGIN
              DROP ROLE IF EXISTS {name};
            EXCEPTION WHEN dependent_objects_still_exist THEN
              RAISE NOTICE 'role {name} still used elsewhere, kept';
            END $$""")
