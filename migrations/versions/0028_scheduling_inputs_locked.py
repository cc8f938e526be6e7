"""A booking's lock and its inputs in one round trip, in the slot routes' shape.

`scheduling_inputs_locked(mentor, mentee, from, to, exclude)` takes the mentor's row lock
(FOR NO KEY UPDATE, as 0025's `scheduling_lock_inputs`) and then returns exactly what
`scheduling_inputs` (migration 0022) returns: one row with the mentor's rules and the pair's
busy times as arrays. The slot routes and the booking routes then share one statement
builder and one reader (app/services/sessions/scheduling.py) instead of two near-copies for
two shapes (0025 returned one row per busy interval, the rules repeated). No row (and no
lock) when the caller may not schedule this pair (`scheduling_allowed`).

The read must see everything the previous holder of the lock committed, so it needs a
snapshot taken after the lock was granted: this function is VOLATILE, so in READ COMMITTED
its RETURN QUERY takes a fresh snapshot, and `scheduling_inputs` (STABLE) reads under the
snapshot of the statement that calls it, that one (and checks the pair again, under it).
Both are PL/pgSQL: their plans are cached per connection. Owner, SECURITY DEFINER and
grants as 0014's functions (the mentor's row and the mentee's other sessions are not visible
to the caller under RLS).

0025's `scheduling_lock_inputs` stays: the code running during a deploy still calls it; a
later migration may drop it.

Revision ID: 0028
Revises: 0023
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0028"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"
IDENTITIES = ("mentorship_mentee, mentorship_mentor, mentorship_director, mentorship_admin, "
              "mentorship_service")
SIGNATURE = "scheduling_inputs_locked(uuid, uuid, timestamptz, timestamptz, uuid)"

FUNCTION = """
CREATE FUNCTION scheduling_inputs_locked(p_mentor uuid, p_mentee uuid, p_from timestamptz,
                                         p_to timestamptz, p_exclude uuid DEFAULT NULL)
RETURNS TABLE (zone text, availability jsonb, capacity_weekly integer, buffer_minutes integer,
               min_notice_hours integer, name text,
               mentor_starts timestamptz[], mentor_ends timestamptz[],
               mentee_starts timestamptz[], mentee_ends timestamptz[],
               off_starts timestamptz[], off_ends timestamptz[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM 1 FROM public.users u
   WHERE u.id = p_mentor AND public.scheduling_allowed(p_mentor, p_mentee)
     FOR NO KEY UPDATE OF u;
  IF NOT FOUND THEN
    RETURN;  -- not an active pair of the caller's: no lock, no row
  END IF;
  -- A new statement, so a new snapshot: taken after the lock was granted.
  RETURN QUERY
    SELECT * FROM public.scheduling_inputs(p_mentor, p_mentee, p_from, p_to, p_exclude);
END $$"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(f"ALTER FUNCTION {SIGNATURE} OWNER TO {WORKER}")
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP}, {WORKER}, {IDENTITIES}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
