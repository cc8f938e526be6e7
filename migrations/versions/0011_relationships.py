"""Relationships that change and end: the waiting list, escalated flags, mentees' reviews.

- `waiting_mentees` (mentee_id, since): one row per active mentee without an active
  assignment (since when), kept by triggers, so every path that changes assignments or
  users (directors, the matcher, deactivation, erasure, the seed) keeps it right without
  knowing about it:
  * AFTER INSERT on assignments (active): the mentee's row goes;
  * AFTER UPDATE OF ended_at on assignments (an active one ends): the mentee waits from
    `ended_at`, unless another assignment is active (a reassignment inserts the next one,
    which removes the row again);
  * AFTER INSERT OR UPDATE OF role, active on users: an active mentee without an active
    assignment waits (from `created_at` on insert, from now on a change); anyone else not.
  A table of its own, not a users column: the triggers never lock or rewrite users rows
  (the matcher's and the directors' lock order stays as it was) and the audit trail does
  not record derived data. The trigger functions are SECURITY DEFINER (owner
  `mentorship_worker`, BYPASSRLS) and touch only this table. The waiting list
  (`GET /api/v1/director/waiting`) is one range scan of `ix_waiting_mentees_since_mentee_id`.
- `flags.escalated_at`, `flags.escalated_by`: a director escalates an open flag. The stored
  `status` stays `open` (so every "open flag" rule: risk, counts, keeps counting it); the API
  shows `escalated` when `escalated_at` is set and the flag is not resolved.
- `mission_reviews`, `mission_submissions`: a mentee reads their own reviews (the feedback
  is for them) and their own submissions (their title).
- A service account deactivates users and changes their role (`POST /users/{id}/deactivate`,
  `user.upserted`), which ends their assignments and cancels their future sessions: role
  `service` may end an active assignment and cancel a scheduled session, and read those
  sessions, only when the mentee or the mentor has left (inactive, or no longer in that
  role): it reads no one else's sessions.
- `ingest_mentee_risk(uuid, timestamptz)`: the risk reasons and score of one mentee, for
  ingestion (role `service`, which RLS keeps from flags and sessions) to tell when an
  inbound signal makes the mentee newly at risk (`risk.raised`). SECURITY DEFINER (owner
  `mentorship_worker`); answers only the service, staff and the system.
- `ix_users_staff`: directors and admins, for `director_ids()` (called by every event that
  goes to the directors).
- `safe_timezone(text)`: the zone name if Postgres knows it, else 'UTC'. Every SQL reader of
  a stored zone goes through it (app/services/mentors/capacity.py `MENTOR_ZONE_SQL`), so a
  bad value saved by some other path (`Mars/Base`) degrades to UTC instead of failing the
  query; the Python readers do the same (`safe_zone`).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORKER = "mentorship_worker"

ASSIGNMENT_TRIGGER_FUNCTION = """
CREATE FUNCTION assignments_sync_waiting() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.ended_at IS NULL THEN
      DELETE FROM public.waiting_mentees WHERE mentee_id = NEW.mentee_id;
    END IF;
  ELSIF OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL THEN
    INSERT INTO public.waiting_mentees (mentee_id, since)
    SELECT u.id, NEW.ended_at FROM public.users u
     WHERE u.id = NEW.mentee_id AND u.role = 'mentee' AND u.active
       AND NOT EXISTS (SELECT 1 FROM public.assignments a
                        WHERE a.mentee_id = NEW.mentee_id AND a.ended_at IS NULL)
    ON CONFLICT (mentee_id) DO NOTHING;
  END IF;
  RETURN NULL;
END $$"""

USER_TRIGGER_FUNCTION = """
CREATE FUNCTION users_sync_waiting() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  IF NEW.role = 'mentee' AND NEW.active THEN
    IF TG_OP = 'INSERT' OR OLD.role <> 'mentee' OR NOT OLD.active THEN
      INSERT INTO public.waiting_mentees (mentee_id, since)
      SELECT NEW.id, CASE WHEN TG_OP = 'INSERT' THEN coalesce(NEW.created_at, now())
                          ELSE now() END
       WHERE NOT EXISTS (SELECT 1 FROM public.assignments a
                          WHERE a.mentee_id = NEW.id AND a.ended_at IS NULL)
      ON CONFLICT (mentee_id) DO NOTHING;
    END IF;
  ELSIF TG_OP = 'UPDATE' THEN
    DELETE FROM public.waiting_mentees WHERE mentee_id = NEW.id;
  END IF;
  RETURN NULL;
END $$"""

OWN_MENTEE_POLICIES = [("reviews_select_own_mentee", "mission_reviews"),
                       ("submissions_select_own_mentee", "mission_submissions")]
SERVICE = "(select app_role()) = 'service'"
# Sessions and assignments of someone who left: a mentee who is inactive or no longer a
# mentee, or a mentor who is inactive or no longer mentors. Only those are the service's
# business (it cancels and ends them after a deactivation or a role change), so it still
# reads no one else's sessions.
# A SECURITY DEFINER function (owner BYPASSRLS), not a sub-select on users in the policy:
# users' own policy reads assignments, so the sub-select would be a recursive policy.
PAIR_LEFT = """
CREATE FUNCTION pair_left(p_mentee uuid, p_mentor uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM public.users u WHERE u.id = p_mentee
                    AND (NOT u.active OR u.role <> 'mentee'))
      OR EXISTS (SELECT 1 FROM public.users u WHERE u.id = p_mentor
                    AND (NOT u.active OR (NOT u.is_mentor AND u.role <> 'mentor')))
$$"""
LEFT = "pair_left(mentee_id, mentor_id)"
# (name, table, command, USING, WITH CHECK)
SERVICE_POLICIES = [
    ("assignments_service_end", "assignments", "UPDATE",
     f"{SERVICE} AND ended_at IS NULL AND {LEFT}", f"{SERVICE} AND ended_at IS NOT NULL"),
    ("sessions_service_select", "sessions", "SELECT", f"{SERVICE} AND {LEFT}", None),
    ("sessions_service_cancel", "sessions", "UPDATE",
     f"{SERVICE} AND status = 'scheduled' AND {LEFT}",
     f"{SERVICE} AND status = 'cancelled'"),
]

SAFE_TIMEZONE = r"""
CREATE FUNCTION safe_timezone(p_zone text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog AS $$
BEGIN
  -- IANA-looking names only (no POSIX rules like 'XYZ+3', which Python would refuse).
  IF p_zone IS NULL OR p_zone !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' THEN
    RETURN 'UTC';
  END IF;
  PERFORM now() AT TIME ZONE p_zone;
  RETURN p_zone;
EXCEPTION WHEN invalid_parameter_value THEN
  RETURN 'UTC';
END $$"""


INGEST_MENTEE_RISK = """
CREATE FUNCTION ingest_mentee_risk(p_mentee uuid, p_as_of timestamptz)
RETURNS TABLE (reasons text[], risk_score integer)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT r.reasons, r.risk_score FROM mentee_risk(array[p_mentee], p_as_of) r
   WHERE app_role() IS NULL OR app_role() IN ('service', 'director', 'admin')
$$"""


def upgrade() -> None:
    op.execute(SAFE_TIMEZONE)
    op.execute(INGEST_MENTEE_RISK)
    op.execute(f"ALTER FUNCTION ingest_mentee_risk(uuid, timestamptz) OWNER TO {WORKER}")
    op.execute("REVOKE ALL ON FUNCTION ingest_mentee_risk(uuid, timestamptz) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION ingest_mentee_risk(uuid, timestamptz) "
               "TO mentorship_app, mentorship_worker")
    op.create_index("ix_users_staff", "users", ["role", "id"],
                    postgresql_where=sa.text("role in ('director', 'admin')"))
    op.create_table(
        "waiting_mentees",
        sa.Column("mentee_id", sa.UUID(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["mentee_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_waiting_mentees_mentee_id_users"),
        sa.PrimaryKeyConstraint("mentee_id", name="pk_waiting_mentees"),
    )
    op.create_index("ix_waiting_mentees_since_mentee_id", "waiting_mentees",
                    ["since", "mentee_id"])
    op.execute("ALTER TABLE waiting_mentees ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE waiting_mentees FORCE ROW LEVEL SECURITY")
    op.execute("""CREATE POLICY waiting_mentees_staff ON waiting_mentees FOR SELECT
                  USING ((select app_role()) in ('director', 'admin'))""")
    for role in ("mentorship_app", WORKER):
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON waiting_mentees TO {role}")
    # Today's waiting mentees: since their last assignment ended, else since they joined.
    op.execute("""
        INSERT INTO waiting_mentees (mentee_id, since)
        SELECT u.id, coalesce((SELECT max(a.ended_at) FROM assignments a
                                WHERE a.mentee_id = u.id), u.created_at)
          FROM users u
         WHERE u.role = 'mentee' AND u.active
           AND NOT EXISTS (SELECT 1 FROM assignments a
                            WHERE a.mentee_id = u.id AND a.ended_at IS NULL)""")
    for function, signature in ((ASSIGNMENT_TRIGGER_FUNCTION, "assignments_sync_waiting()"),
                                (USER_TRIGGER_FUNCTION, "users_sync_waiting()")):
        op.execute(function)
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {WORKER}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute("""
        CREATE TRIGGER assignments_sync_waiting
        AFTER INSERT OR UPDATE OF ended_at ON assignments
        FOR EACH ROW EXECUTE FUNCTION assignments_sync_waiting()""")
    op.execute("""
        CREATE TRIGGER users_sync_waiting
        AFTER INSERT OR UPDATE OF role, active ON users
        FOR EACH ROW EXECUTE FUNCTION users_sync_waiting()""")

    op.add_column("flags", sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("flags", sa.Column("escalated_by", sa.UUID(), nullable=True))

    for name, table in OWN_MENTEE_POLICIES:
        op.execute(f"""
            CREATE POLICY {name} ON {table} FOR SELECT
            USING ((select app_role()) = 'mentee' AND mentee_id = (select app_user_id()))""")
    op.execute(PAIR_LEFT)
    op.execute(f"ALTER FUNCTION pair_left(uuid, uuid) OWNER TO {WORKER}")
    op.execute("REVOKE ALL ON FUNCTION pair_left(uuid, uuid) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION pair_left(uuid, uuid) TO mentorship_app")
    for name, table, command, using, check in SERVICE_POLICIES:
        sql = f"CREATE POLICY {name} ON {table} FOR {command} USING ({using})"
        op.execute(sql + (f" WITH CHECK ({check})" if check else ""))


def downgrade() -> None:
    for name, table, *_ in SERVICE_POLICIES:
        op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS pair_left(uuid, uuid)")
    for name, table in OWN_MENTEE_POLICIES:
        op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS safe_timezone(text)")
    op.execute("DROP FUNCTION IF EXISTS ingest_mentee_risk(uuid, timestamptz)")
    op.drop_index("ix_users_staff", table_name="users")
    op.drop_column("flags", "escalated_by")
    op.drop_column("flags", "escalated_at")
    op.execute("DROP TRIGGER IF EXISTS users_sync_waiting ON users")
    op.execute("DROP TRIGGER IF EXISTS assignments_sync_waiting ON assignments")
    op.execute("DROP FUNCTION IF EXISTS users_sync_waiting()")
    op.execute("DROP FUNCTION IF EXISTS assignments_sync_waiting()")
    op.drop_table("waiting_mentees")
