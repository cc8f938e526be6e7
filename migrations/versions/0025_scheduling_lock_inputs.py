"""A booking's lock and its inputs in one round trip.

`scheduling_lock_inputs(mentor, mentee, from, to, exclude)` takes the mentor's row lock
(`scheduling_mentor_lock`, migration 0014) and then returns what the slot engine judges a
booking by: the mentor's rules and the pair's busy times in [from, to), one row per busy
interval (the rules repeated; a null `kind` when nothing is busy), as the booking service
read them before with two statements. It returns no row when the caller may not schedule
this pair.

Why a function: the read must see everything the previous holder of the lock committed, so
it needs a snapshot taken after the lock was granted. In READ COMMITTED a VOLATILE plpgsql
function takes a fresh snapshot for each statement it runs, so the second statement below
sees what one statement of the caller could not. The lock and the checks stay those of
0014's SECURITY DEFINER functions; this one runs as its caller (SECURITY INVOKER) and adds
no privilege.

Revision ID: 0025
Revises: 0020
"""

from collections.abc import Sequence

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
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM 1 FROM public.scheduling_mentor_lock(p_mentor, p_mentee);
  IF NOT FOUND THEN
    RETURN;  -- not an active pair of the caller's: no lock, no row
  END IF;
  -- A new statement, so a new snapshot: taken after the lock was granted.
  RETURN QUERY
    SELECT r.zone, r.availability, r.capacity_weekly, r.buffer_minutes,
           r.min_notice_hours, r.name, b.kind, b.starts_at, b.ends_at
      FROM public.scheduling_mentor(p_mentor, p_mentee) r
      LEFT JOIN LATERAL public.scheduling_busy(p_mentor, p_mentee, p_from, p_to,
                                               p_exclude) b ON true;
END $$"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP}, {WORKER}, {IDENTITIES}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
