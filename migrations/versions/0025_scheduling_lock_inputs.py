"""A booking's lock and its inputs in one round trip.

`scheduling_lock_inputs(mentor, mentee, from, to, exclude)` takes the mentor's row lock
(FOR NO KEY UPDATE, as `scheduling_mentor_lock` of migration 0014) and then returns what
the slot engine judges a booking by: the mentor's rules and the pair's busy times in
[from, to), one row per busy interval (the rules repeated; a null `kind` when nothing is
busy), as the booking service read them before with two statements. No row (and no lock)
when the caller may not schedule this pair (`scheduling_allowed`).

Why a function: the read must see everything the previous holder of the lock committed, so
it needs a snapshot taken after the lock was granted. In READ COMMITTED a VOLATILE PL/pgSQL
function takes a fresh snapshot for each statement it runs, so the second statement below
sees what one statement of the caller could not (and checks the pair again, as the
separate read did). Its queries are 0014's `scheduling_mentor_lock`, `scheduling_mentor`
and `scheduling_busy`, written out rather than called: PL/pgSQL caches their plans per
connection, where a SECURITY DEFINER SQL function plans its body on every call. Owner,
SECURITY DEFINER and grants as 0014's functions (the mentor's row and the mentee's other
sessions are not visible to the caller under RLS).

`scheduling_allowed` (0014), which every scheduling function calls, moves to PL/pgSQL for
the same reason, its body unchanged: as a SQL function it was planned on each call
(~0.3 ms on the bench data, twice per booking).

Revision ID: 0025
Revises: 0020
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from alembic import op

revision: str = "0025"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"
IDENTITIES = ("mentorship_mentee, mentorship_mentor, mentorship_director, mentorship_admin, "
              "mentorship_service")
SIGNATURE = "scheduling_lock_inputs(uuid, uuid, timestamptz, timestamptz, uuid)"

FUNCTION = """
CREATE FUNCTION scheduling_lock_inputs(p_mentor uuid, p_mentee uuid, p_from timestamptz,
                                       p_to timestamptz, p_exclude uuid DEFAULT NULL)
RETURNS TABLE (zone text, availability jsonb, capacity_weekly integer,
               buffer_minutes integer, min_notice_hours integer, name text,
               kind text, starts_at timestamptz, ends_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM 1 FROM public.users u
   WHERE u.id = p_mentor AND public.scheduling_allowed(p_mentor, p_mentee)
     FOR NO KEY UPDATE OF u;
  IF NOT FOUND THEN
    RETURN;  -- not an active pair of the caller's: no lock, no row
  END IF;
  -- A new statement, so a new snapshot: taken after the lock was granted. Sessions last
  -- at most 240 minutes: the lower bound on starts_at keeps each scan an index range.
  RETURN QUERY
    SELECT coalesce(nullif(u.mentor_availability->>'timezone', ''), u.timezone, 'UTC'),
           u.mentor_availability, u.mentor_capacity_weekly, u.mentor_buffer_minutes::int,
           u.mentor_min_notice_hours::int, u.name::text, b.kind, b.starts_at, b.ends_at
      FROM public.users u
      LEFT JOIN LATERAL (
        SELECT 'mentor'::text, s.starts_at, s.ends_at FROM public.sessions s
         WHERE s.mentor_id = p_mentor AND s.status <> 'cancelled'
           AND s.starts_at < p_to AND s.starts_at > p_from - interval '240 minutes'
           AND s.ends_at > p_from AND s.id IS DISTINCT FROM p_exclude
        UNION ALL
        SELECT 'mentee', s.starts_at, s.ends_at FROM public.sessions s
         WHERE s.mentee_id = p_mentee AND s.mentor_id <> p_mentor
           AND s.status <> 'cancelled'
           AND s.starts_at < p_to AND s.starts_at > p_from - interval '240 minutes'
           AND s.ends_at > p_from AND s.id IS DISTINCT FROM p_exclude
        UNION ALL
        SELECT 'time_off', t.starts_at, t.ends_at FROM public.mentor_time_off t
         WHERE t.mentor_id = p_mentor AND t.starts_at < p_to AND t.ends_at > p_from
      ) b(kind, starts_at, ends_at) ON true
     WHERE u.id = p_mentor AND public.scheduling_allowed(p_mentor, p_mentee);
END $$"""


# 0014's CASE, unchanged, returned by PL/pgSQL.
ALLOWED = """
CREATE OR REPLACE FUNCTION scheduling_allowed(p_mentor uuid, p_mentee uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RETURN CASE
    WHEN public.app_role() IN ('director', 'admin') THEN true
    WHEN public.app_role() IS NULL THEN session_user = 'mentorship_worker'
    WHEN (public.app_role() = 'mentor' AND p_mentor = public.app_user_id())
      OR (public.app_role() = 'mentee' AND p_mentee = public.app_user_id())
    THEN EXISTS (SELECT 1 FROM public.assignments a
                  WHERE a.mentor_id = p_mentor AND a.mentee_id = p_mentee
                    AND a.ended_at IS NULL)
    ELSE false END;
END $$"""


def _allowed_0014() -> str:
    """0014's SQL definition of `scheduling_allowed` (restored by the downgrade)."""
    path = Path(__file__).with_name("0014_scheduling.py")
    spec = importlib.util.spec_from_file_location("migration_0014", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ALLOWED.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


def upgrade() -> None:
    op.execute(ALLOWED)  # CREATE OR REPLACE keeps the owner and the grants
    op.execute(FUNCTION)
    op.execute(f"ALTER FUNCTION {SIGNATURE} OWNER TO {WORKER}")
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP}, {WORKER}, {IDENTITIES}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
    op.execute(_allowed_0014())
