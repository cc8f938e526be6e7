"""Scheduling like a calendar product: buffers, minimum notice, time off, mentees who book.

- `users.mentor_buffer_minutes` (0-120, free gap before and after each live session of the
  mentor) and `users.mentor_min_notice_hours` (0-336, how soon a mentee may book).
- `mentor_time_off`: periods in which no session may start or run (audited). RLS: the
  mentor and staff only (a mentee learns the busy times, never the reason, through the functions below).
- `sessions`: a mentee may now insert and update their own sessions with their current
  mentor (booking, reschedule, cancel); the service decides which columns change.
- The slot engine's inputs, for both people of a pair whatever the caller's role, through
  narrow SECURITY DEFINER functions owned by `mentorship_worker` (BYPASSRLS, the convention
  of 0003/0005/0006) that answer only for an active pair the caller belongs to (or staff,
  or the workers acting as the system):
  * `scheduling_mentor(mentor, mentee)`: the mentor's scheduling rules (zone, windows,
    weekly capacity, buffer, notice);
  * `scheduling_mentor_lock(mentor, mentee)`: the same, taking the mentor's row lock
    (FOR NO KEY UPDATE), which serialises every booking of that mentor whoever books
    (a mentee may not lock the mentor's row under RLS);
  * `scheduling_busy(mentor, mentee, from, to, exclude)`: live sessions of the mentor, live
    sessions of the mentee with other mentors and the mentor's time off overlapping
    [from, to): start and end only, nothing else about them.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"

ME = "(select app_user_id())"
ROLE = "(select app_role())"
STAFF = f"{ROLE} in ('director', 'admin')"
MY_MENTEES = (
    "(select a.mentee_id from assignments a "
    f"where a.mentor_id = {ME} and a.ended_at is null)"
)
MY_MENTOR = (
    "(select a.mentor_id from assignments a "
    f"where a.mentee_id = {ME} and a.ended_at is null)"
)
OWN_PAIR = (f"(mentor_id = {ME} and mentee_id in {MY_MENTEES}) "
            f"or (mentee_id = {ME} and mentor_id in {MY_MENTOR})")

ALLOWED = """
CREATE FUNCTION scheduling_allowed(p_mentor uuid, p_mentee uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE
    WHEN public.app_role() IN ('director', 'admin') THEN true
    WHEN public.app_role() IS NULL THEN session_user = 'mentorship_worker'
    WHEN (public.app_role() = 'mentor' AND p_mentor = public.app_user_id())
      OR (public.app_role() = 'mentee' AND p_mentee = public.app_user_id())
    THEN EXISTS (SELECT 1 FROM public.assignments a
                  WHERE a.mentor_id = p_mentor AND a.mentee_id = p_mentee
                    AND a.ended_at IS NULL)
    ELSE false END
$$"""

MENTOR_COLUMNS = """
  SELECT coalesce(nullif(u.mentor_availability->>'timezone', ''), u.timezone, 'UTC'),
         u.mentor_availability, u.mentor_capacity_weekly, u.mentor_buffer_minutes::int,
         u.mentor_min_notice_hours::int, u.name::text
    FROM public.users u
   WHERE u.id = p_mentor AND public.scheduling_allowed(p_mentor, p_mentee)"""
MENTOR_RESULT = ("TABLE (zone text, availability jsonb, capacity_weekly integer, "
                 "buffer_minutes integer, min_notice_hours integer, name text)")

MENTOR = f"""
CREATE FUNCTION scheduling_mentor(p_mentor uuid, p_mentee uuid) RETURNS {MENTOR_RESULT}
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
{MENTOR_COLUMNS}
$$"""

MENTOR_LOCK = f"""
CREATE FUNCTION scheduling_mentor_lock(p_mentor uuid, p_mentee uuid) RETURNS {MENTOR_RESULT}
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
{MENTOR_COLUMNS}
     FOR NO KEY UPDATE OF u
$$"""

# Sessions last at most 240 minutes: the lower bound on starts_at keeps the scan an index
# range on (mentor_id, starts_at) / (mentee_id, starts_at).
BUSY = """
CREATE FUNCTION scheduling_busy(p_mentor uuid, p_mentee uuid, p_from timestamptz,
                                p_to timestamptz, p_exclude uuid DEFAULT NULL)
RETURNS TABLE (kind text, starts_at timestamptz, ends_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH allowed AS MATERIALIZED (SELECT public.scheduling_allowed(p_mentor, p_mentee) AS ok)
  SELECT 'mentor', s.starts_at, s.ends_at FROM public.sessions s
   WHERE (SELECT ok FROM allowed) AND s.mentor_id = p_mentor AND s.status <> 'cancelled'
     AND s.starts_at < p_to AND s.starts_at > p_from - interval '240 minutes'
     AND s.ends_at > p_from AND s.id IS DISTINCT FROM p_exclude
  UNION ALL
  SELECT 'mentee', s.starts_at, s.ends_at FROM public.sessions s
   WHERE (SELECT ok FROM allowed) AND s.mentee_id = p_mentee AND s.mentor_id <> p_mentor
     AND s.status <> 'cancelled'
     AND s.starts_at < p_to AND s.starts_at > p_from - interval '240 minutes'
     AND s.ends_at > p_from AND s.id IS DISTINCT FROM p_exclude
  UNION ALL
  SELECT 'time_off', t.starts_at, t.ends_at FROM public.mentor_time_off t
   WHERE (SELECT ok FROM allowed) AND t.mentor_id = p_mentor
     AND t.starts_at < p_to AND t.ends_at > p_from
$$"""

FUNCTIONS = {
    "scheduling_allowed(uuid, uuid)": ALLOWED,
    "scheduling_mentor(uuid, uuid)": MENTOR,
    "scheduling_mentor_lock(uuid, uuid)": MENTOR_LOCK,
    "scheduling_busy(uuid, uuid, timestamptz, timestamptz, uuid)": BUSY,
}


def _session_policies(using: str, pair: str) -> None:
    op.execute("DROP POLICY sessions_insert ON sessions")
    op.execute("DROP POLICY sessions_update ON sessions")
    op.execute(f"CREATE POLICY sessions_insert ON sessions FOR INSERT "
               f"WITH CHECK ({STAFF} or {pair})")
    op.execute(f"CREATE POLICY sessions_update ON sessions FOR UPDATE USING ({using}) "
               f"WITH CHECK ({STAFF} or {pair})")


def upgrade() -> None:
    op.add_column("users", sa.Column("mentor_buffer_minutes", sa.SmallInteger(),
                                     server_default=sa.text("0"), nullable=False))
    op.add_column("users", sa.Column("mentor_min_notice_hours", sa.SmallInteger(),
                                     server_default=sa.text("0"), nullable=False))
    op.create_check_constraint("buffer_minutes", "users",
                               "mentor_buffer_minutes between 0 and 120")
    op.create_check_constraint("min_notice_hours", "users",
                               "mentor_min_notice_hours between 0 and 336")

    op.create_table(
        "mentor_time_off",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("mentor_id", sa.UUID(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_mentor_time_off_period")),
        sa.ForeignKeyConstraint(["mentor_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_mentor_time_off_mentor_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentor_time_off")),
    )
    op.create_index("ix_mentor_time_off_mentor_id_starts_at", "mentor_time_off",
                    ["mentor_id", "starts_at"])
    op.execute("ALTER TABLE mentor_time_off ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE mentor_time_off FORCE ROW LEVEL SECURITY")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON mentor_time_off TO {APP}, {WORKER}")
    op.execute(f"CREATE POLICY time_off_select ON mentor_time_off FOR SELECT "
               f"USING ({STAFF} or mentor_id = {ME})")
    op.execute(f"CREATE POLICY time_off_write ON mentor_time_off FOR ALL "
               f"USING ({STAFF} or mentor_id = {ME}) WITH CHECK ({STAFF} or mentor_id = {ME})")

    # Programme data: audited like sessions (migration 0008's trigger function).
    op.execute("CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON mentor_time_off "
               "FOR EACH ROW EXECUTE FUNCTION audit_row()")

    _session_policies(f"{STAFF} or mentor_id = {ME} or mentee_id = {ME}", OWN_PAIR)

    for signature, sql in FUNCTIONS.items():
        op.execute(sql)
        op.execute(f"ALTER FUNCTION {signature} OWNER TO {WORKER}")
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP}, {WORKER}")


def downgrade() -> None:
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    _session_policies(f"{STAFF} or mentor_id = {ME}",
                      f"(mentor_id = {ME} and mentee_id in {MY_MENTEES})")
    op.drop_table("mentor_time_off")
    op.drop_constraint(op.f("ck_users_min_notice_hours"), "users", type_="check")
    op.drop_constraint(op.f("ck_users_buffer_minutes"), "users", type_="check")
    op.drop_column("users", "mentor_min_notice_hours")
    op.drop_column("users", "mentor_buffer_minutes")
