"""The latest matcher run's reasons, one row per unplaced mentee; finished runs by index.

The waiting list shows, for each of its 50 rows, why the latest finished matcher run did not
place that mentee. Read from `matching_runs.unplaced` (a map of every unplaced mentee, stored
compressed: 105 kB for 3,000 mentees), each page decompressed the whole map and looked up 50
keys in it: 0.85 of the page's 1.3 ms in Postgres at 1K x 20K. `matching_unplaced` holds the
same pairs as rows, keyed (run_id, mentee_id): 50 primary-key lookups, whatever the run's
size. A trigger keeps it a function of the map (every writer of `unplaced`: the matcher, the
erasure scrub, tests): rows for `done` runs only, rebuilt when a run's status or map changes;
the rows go with their run (ON DELETE CASCADE). Only the trigger writes it (SECURITY DEFINER);
staff read it, as they read `matching_runs`.

`ix_matching_runs_done_finished_at`: the latest finished run without a scan and sort of every
run (one per matcher run, kept for months).

Revision ID: 0027
Revises: 0028
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"
IDENTITIES = ("mentorship_mentee, mentorship_mentor, mentorship_director, mentorship_admin, "
              "mentorship_service")
STAFF = "(select app_role()) in ('director', 'admin')"

FUNCTION = """
CREATE FUNCTION matching_unplaced_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD.status IS NOT DISTINCT FROM NEW.status
       AND OLD.unplaced IS NOT DISTINCT FROM NEW.unplaced THEN
      RETURN NULL;
    END IF;
    IF OLD.status = 'done' THEN
      DELETE FROM public.matching_unplaced WHERE run_id = OLD.id;
    END IF;
  END IF;
  IF NEW.status = 'done' AND jsonb_typeof(NEW.unplaced) = 'object' THEN
    INSERT INTO public.matching_unplaced (run_id, mentee_id, reason)
    SELECT NEW.id, e.key::uuid, e.value
      FROM jsonb_each_text(NEW.unplaced) e
     WHERE e.key ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
  END IF;
  RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_index("ix_matching_runs_done_finished_at", "matching_runs",
                    [sa.text("finished_at DESC")],
                    postgresql_where=sa.text("status = 'done' AND finished_at IS NOT NULL"))
    op.create_table(
        "matching_unplaced",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("mentee_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["matching_runs.id"], ondelete="CASCADE",
                                name=op.f("fk_matching_unplaced_run_id_matching_runs")),
        sa.PrimaryKeyConstraint("run_id", "mentee_id", name=op.f("pk_matching_unplaced")),
    )
    op.execute(f"GRANT SELECT ON matching_unplaced TO {APP}, {WORKER}, {IDENTITIES}")
    op.execute("ALTER TABLE matching_unplaced ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE matching_unplaced FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY matching_unplaced_staff ON matching_unplaced FOR SELECT "
               f"USING ({STAFF})")
    op.execute(FUNCTION)
    op.execute("REVOKE ALL ON FUNCTION matching_unplaced_sync() FROM public")
    op.execute("CREATE TRIGGER matching_unplaced_sync AFTER INSERT OR UPDATE OF status, unplaced "
               "ON matching_runs FOR EACH ROW EXECUTE FUNCTION matching_unplaced_sync()")
    # The runs already finished.
    op.execute("""
        INSERT INTO matching_unplaced (run_id, mentee_id, reason)
        SELECT r.id, e.key::uuid, e.value
          FROM matching_runs r CROSS JOIN LATERAL jsonb_each_text(r.unplaced) e
         WHERE r.status = 'done' AND jsonb_typeof(r.unplaced) = 'object'
           AND e.key ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS matching_unplaced_sync ON matching_runs")
    op.execute("DROP FUNCTION IF EXISTS matching_unplaced_sync()")
    op.drop_table("matching_unplaced")
    op.drop_index("ix_matching_runs_done_finished_at", table_name="matching_runs")
