"""Dry runs' proposals expire; 0025's `scheduling_lock_inputs` goes.

`matching_runs.proposals_expired_at`: when retention (app/services/compliance/retention.py)
expired a dry run that was never published, `RETENTION_MATCHING_DRY_RUNS_DAYS` after it
finished. Its proposals (~16,000 rows at 1K x 20K) are then deleted in batches, and its rows
in `matching_unplaced` go with the mark: migration 0027's trigger now keeps rows only for
`done` runs not expired (they serve the waiting list, which reads the latest finished run's
alone, and retention never expires that one). The run's summary and its `unplaced` map stay.

No new index (EXPLAIN with 400 runs, 400K proposals, 75K unplaced rows): the next run to
expire comes from 0027's `ix_matching_runs_done_finished_at` (0.2 ms), the expired runs with
proposals left from a scan of `matching_runs` and the primary key of `matching_proposals`
(0.5 ms), a batch of a run's proposals from that key's prefix, run_id (32 ms per 5,000).

`scheduling_lock_inputs` (0025): no code calls it since 0028 replaced it; the downgrade
recreates it from 0025's definition.

Revision ID: 0029
Revises: 0026
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0027's function, with the expiry: rows for `done` runs whose proposals have not expired.
FUNCTION = """
CREATE OR REPLACE FUNCTION matching_unplaced_sync() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD.status IS NOT DISTINCT FROM NEW.status
       AND OLD.unplaced IS NOT DISTINCT FROM NEW.unplaced
       AND OLD.proposals_expired_at IS NOT DISTINCT FROM NEW.proposals_expired_at THEN
      RETURN NULL;
    END IF;
    IF OLD.status = 'done' AND OLD.proposals_expired_at IS NULL THEN
      DELETE FROM public.matching_unplaced WHERE run_id = OLD.id;
    END IF;
  END IF;
  IF NEW.status = 'done' AND NEW.proposals_expired_at IS NULL
     AND jsonb_typeof(NEW.unplaced) = 'object' THEN
    INSERT INTO public.matching_unplaced (run_id, mentee_id, reason)
    SELECT NEW.id, e.key::uuid, e.value
      FROM jsonb_each_text(NEW.unplaced) e
     WHERE e.key ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
  END IF;
  RETURN NULL;
END $$
"""
TRIGGER = ("CREATE TRIGGER matching_unplaced_sync AFTER INSERT OR UPDATE OF {columns} "
           "ON matching_runs FOR EACH ROW EXECUTE FUNCTION matching_unplaced_sync()")


def _migration(filename: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.add_column("matching_runs", sa.Column("proposals_expired_at",
                                             sa.DateTime(timezone=True), nullable=True))
    op.execute(FUNCTION)  # CREATE OR REPLACE keeps the owner and the grants
    op.execute("DROP TRIGGER matching_unplaced_sync ON matching_runs")
    op.execute(TRIGGER.format(columns="status, unplaced, proposals_expired_at"))
    op.execute(f"DROP FUNCTION {_migration('0025_scheduling_lock_inputs.py').SIGNATURE}")


def downgrade() -> None:
    lock_inputs = _migration("0025_scheduling_lock_inputs.py")
    signature = lock_inputs.SIGNATURE
    op.execute(lock_inputs.FUNCTION)
    op.execute(f"ALTER FUNCTION {signature} OWNER TO {lock_inputs.WORKER}")
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {lock_inputs.APP}, "
               f"{lock_inputs.WORKER}, {lock_inputs.IDENTITIES}")

    unplaced = _migration("0027_matching_unplaced.py")
    op.execute("DROP TRIGGER matching_unplaced_sync ON matching_runs")
    op.execute(unplaced.FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.execute(TRIGGER.format(columns="status, unplaced"))
    # 0027 keeps rows for every `done` run: the expired runs' come back.
    op.execute("""
        INSERT INTO matching_unplaced (run_id, mentee_id, reason)
        SELECT r.id, e.key::uuid, e.value
          FROM matching_runs r CROSS JOIN LATERAL jsonb_each_text(r.unplaced) e
         WHERE r.status = 'done' AND r.proposals_expired_at IS NOT NULL
           AND jsonb_typeof(r.unplaced) = 'object'
           AND e.key ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
    """)
    op.drop_column("matching_runs", "proposals_expired_at")
