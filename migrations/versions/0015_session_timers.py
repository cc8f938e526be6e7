"""Session timers (reminders and the follow-up), and the risk rule they change.

`session_timers`: one row per session and timer: `reminder:1440`, `reminder:60` (the
`session.reminder` events) and `followup` (the outcome question two hours after the end).
A trigger on `sessions` keeps them, whoever writes the session (API, workers, the admin
UI, other domains):
- a new scheduled session arms the reminders whose moment is still ahead (a booking made
  less than 24 hours ahead gets only the 60-minute one, or none) and, unless it has
  already ended (history written after the fact), its follow-up;
- a move (starts_at / ends_at) re-arms them all for the new time, sent or not;
- leaving `scheduled` (cancelled, completed, no-show) removes the pending ones.
Workers claim due rows with FOR UPDATE SKIP LOCKED and mark them done in the transaction
that writes the event or the work item, so each fires once however many workers run, and a
worker that dies mid-batch rolls back and leaves the rows for the next one.
The trigger function is SECURITY DEFINER owned by `mentorship_worker` (BYPASSRLS): the API
role may not touch the table; staff may read it.

Backfill: live future sessions get the timers still ahead; sessions that ended before this
migration get no follow-up (the first sweep must not flood the queues).

Risk: `no_recent_session` no longer counts a session still `scheduled` two hours after its
end as contact (`mentee_risk` redefined, the rest unchanged).

Revision ID: 0015
Revises: 0014
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"
STAFF = "(select app_role()) in ('director', 'admin')"

ARM = """
    INSERT INTO public.session_timers (session_id, kind, due_at)
    SELECT {id}, t.kind, t.due_at
      FROM (VALUES ('reminder:1440', {starts} - interval '1440 minutes'),
                   ('reminder:60', {starts} - interval '60 minutes'),
                   ('followup', {ends} + interval '2 hours')) AS t(kind, due_at)
     WHERE t.due_at > now() AND {ends} > now()"""

TRIGGER_FUNCTION = f"""
CREATE FUNCTION sessions_arm_timers() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status = 'scheduled' THEN
      {ARM.format(id="NEW.id", starts="NEW.starts_at", ends="NEW.ends_at")};
    END IF;
  ELSIF NEW.status = 'scheduled' AND (NEW.starts_at <> OLD.starts_at
                                      OR NEW.ends_at <> OLD.ends_at) THEN
    DELETE FROM public.session_timers WHERE session_id = NEW.id;
    {ARM.format(id="NEW.id", starts="NEW.starts_at", ends="NEW.ends_at")};
  ELSIF NEW.status <> 'scheduled' AND OLD.status = 'scheduled' THEN
    DELETE FROM public.session_timers WHERE session_id = NEW.id AND done_at IS NULL;
  END IF;
  RETURN NULL;
END $$"""

# Live sessions that have not ended: the timers still ahead.
BACKFILL = """
    INSERT INTO session_timers (session_id, kind, due_at)
    SELECT s.id, t.kind, t.due_at
      FROM sessions s
     CROSS JOIN LATERAL (VALUES ('reminder:1440', s.starts_at - interval '1440 minutes'),
                                ('reminder:60', s.starts_at - interval '60 minutes'),
                                ('followup', s.ends_at + interval '2 hours')) AS t(kind, due_at)
     WHERE s.status = 'scheduled' AND s.ends_at > now()
       AND (t.kind = 'followup' OR t.due_at > now())"""

OLD_CONTACT = """s.status in ('completed', 'scheduled')
                  and s.starts_at > as_of - interval '21 days' and s.starts_at <= as_of"""
NEW_CONTACT = """(s.status = 'completed'
                       or (s.status = 'scheduled' and s.ends_at + interval '2 hours' > as_of))
                  and s.starts_at > as_of - interval '21 days' and s.starts_at <= as_of"""


def _risk_function() -> str:
    """0006's `mentee_risk`, with the contact rule changed (the only difference)."""
    path = Path(__file__).with_name("0006_risk_functions.py")
    spec = importlib.util.spec_from_file_location("migration_0006", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert OLD_CONTACT in module.MENTEE_RISK, "0006's contact rule moved"
    return module.MENTEE_RISK.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


def upgrade() -> None:
    op.create_table(
        "session_timers",
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind in ('reminder:1440', 'reminder:60', 'followup')",
                           name=op.f("ck_session_timers_kind")),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE",
                                name=op.f("fk_session_timers_session_id_sessions")),
        sa.PrimaryKeyConstraint("session_id", "kind", name=op.f("pk_session_timers")),
    )
    op.create_index("ix_session_timers_pending_due_at", "session_timers", ["due_at"],
                    postgresql_where=sa.text("done_at is null"))
    op.execute("ALTER TABLE session_timers ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE session_timers FORCE ROW LEVEL SECURITY")
    op.execute(f"GRANT SELECT ON session_timers TO {APP}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON session_timers TO {WORKER}")
    op.execute(f"CREATE POLICY session_timers_staff ON session_timers FOR SELECT "
               f"USING ({STAFF})")

    op.execute(TRIGGER_FUNCTION)
    op.execute(f"ALTER FUNCTION sessions_arm_timers() OWNER TO {WORKER}")
    op.execute("REVOKE ALL ON FUNCTION sessions_arm_timers() FROM PUBLIC")
    op.execute("""
        CREATE TRIGGER sessions_arm_timers
        AFTER INSERT OR UPDATE OF starts_at, ends_at, status ON sessions
        FOR EACH ROW EXECUTE FUNCTION sessions_arm_timers()""")

    op.execute(BACKFILL)

    op.execute(_risk_function().replace(OLD_CONTACT, NEW_CONTACT))


def downgrade() -> None:
    op.execute(_risk_function())
    op.execute("DROP TRIGGER sessions_arm_timers ON sessions")
    op.execute("DROP FUNCTION sessions_arm_timers()")
    op.drop_table("session_timers")
