"""Risk: one SQL definition of the six at-risk reasons, used by mentors and by mentees.

- `mentee_risk(ids uuid[], as_of timestamptz)`: SECURITY INVOKER, one set-based query over
  the given mentees (lateral index lookups, no per-mentee round trips). It runs with the
  caller's rights, so under RLS a mentor only gets rows for their own active mentees. It is
  a plain `LANGUAGE sql STABLE` function with no SET clause, so the planner inlines it
  into the calling query.
- `mentee_at_risk()`: SECURITY DEFINER wrapper for the mentee's banner. The mentee may not
  read flags, work items, signals or readiness under RLS; this function reads them with
  its owner's rights and returns one boolean about the caller only (`app_user_id()` when
  `app_role() = 'mentee'`, else NULL): never reasons, never notes, never another mentee.
  Its owner is `mentorship_worker` (BYPASSRLS, like the ops functions of 0003), so it
  sees every row even though the tables FORCE row-level security, whoever ran the
  migration; only `mentorship_app` may execute it.

The rules (also documented in app/services/risk/scoring.py and the OpenAPI description):
- open_flag: an open flag about the mentee (weight by the highest open severity:
  low 15, medium 25, high 40, critical 60).
- habit_streak_broken: a `habit_streak_broken` signal in the last 7 days (15).
- readiness_drop: within the last 14 days, the highest readiness the mentee had (each
  record's score and previous_score in the window) minus the latest score >= 10 (20).
- overdue_work: an unfinished work item about the mentee past its due_at, or marked
  overdue by the SLA sweep, as the work queue counts it (15).
- no_show_last_session: the latest session with the current mentor that has started and
  is not cancelled is a no_show (20).
- no_recent_session: assigned to the current mentor for 21 days or more and no session
  with them (completed, or scheduled and already started) began in the last 21 days (15).
risk_score = the sum of the weights, capped at 100.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"

# Sessions count for the session reasons only with the mentee's current mentor, so a
# mentor (who sees only their own sessions under RLS) and the definer path agree.
MENTEE_RISK = """
CREATE FUNCTION mentee_risk(ids uuid[], as_of timestamptz DEFAULT now())
RETURNS TABLE (mentee_id uuid, reasons text[], risk_score integer)
LANGUAGE sql STABLE PARALLEL SAFE SECURITY INVOKER
AS $fn$
  select f.id,
         array_remove(array[
           case when f.flag_rank is not null then 'open_flag' end,
           case when f.last_session = 'no_show' then 'no_show_last_session' end,
           case when f.readiness_peak - f.readiness_latest >= 10 then 'readiness_drop' end,
           case when f.overdue_work then 'overdue_work' end,
           case when f.habit_broken then 'habit_streak_broken' end,
           case when f.no_recent_session then 'no_recent_session' end
         ], null)::text[],
         least(100,
           coalesce((array[15, 25, 40, 60])[f.flag_rank], 0)
           + case when f.last_session = 'no_show' then 20 else 0 end
           + case when f.readiness_peak - f.readiness_latest >= 10 then 20 else 0 end
           + case when f.overdue_work then 15 else 0 end
           + case when f.habit_broken then 15 else 0 end
           + case when f.no_recent_session then 15 else 0 end
         )::integer
    from (
      -- One row of facts per mentee, each an index lookup. Scalar sub-selects (not a
      -- many-way lateral join) keep planning cheap; OFFSET 0 keeps the subquery from
      -- being flattened, so each fact is computed once although used twice above.
      select m.id,
             (select max(case fl.severity when 'low' then 1 when 'medium' then 2
                                          when 'high' then 3 when 'critical' then 4 end)
                from flags fl
               where fl.mentee_id = m.id and fl.status = 'open' and fl.created_at <= as_of
             ) as flag_rank,
             exists (
               select 1 from mentee_signals sg
                where sg.mentee_id = m.id and sg.kind = 'habit_streak_broken'
                  and sg.occurred_at > as_of - interval '7 days' and sg.occurred_at <= as_of
             ) as habit_broken,
             (select max(greatest(r.score, r.previous_score)) from readiness_history r
               where r.mentee_id = m.id
                 and r.recorded_at > as_of - interval '14 days' and r.recorded_at <= as_of
             ) as readiness_peak,
             (select r.score from readiness_history r
               where r.mentee_id = m.id
                 and r.recorded_at > as_of - interval '14 days' and r.recorded_at <= as_of
               order by r.recorded_at desc limit 1
             ) as readiness_latest,
             exists (
               select 1 from work_items w
                where w.mentee_id = m.id and w.status <> 'done'
                  and (w.due_at < as_of or w.overdue)
             ) as overdue_work,
             (select s.status from sessions s
               where s.mentee_id = m.id and s.mentor_id = a.mentor_id
                 and s.status <> 'cancelled' and s.starts_at <= as_of
               order by s.starts_at desc limit 1
             ) as last_session,
             a.started_at <= as_of - interval '21 days' and not exists (
               select 1 from sessions s
                where s.mentee_id = m.id and s.mentor_id = a.mentor_id
                  and s.status in ('completed', 'scheduled')
                  and s.starts_at > as_of - interval '21 days' and s.starts_at <= as_of
             ) as no_recent_session
        from unnest(ids) as m(id)
        left join assignments a on a.mentee_id = m.id and a.ended_at is null
      offset 0
    ) f
$fn$
"""

MENTEE_AT_RISK = """
CREATE FUNCTION mentee_at_risk() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = public, pg_temp
AS $fn$
  select case when app_role() = 'mentee' then
           coalesce((select cardinality(r.reasons) > 0
                       from mentee_risk(array[app_user_id()], now()) r), false)
         end
$fn$
"""


def upgrade() -> None:
    # Unfinished items per mentee: the risk's overdue probe and the dashboard's counts
    # read only these, however many done items a mentee piles up.
    op.create_index("ix_work_items_unfinished_mentee_id_due_at", "work_items",
                    ["mentee_id", "due_at"], postgresql_where=sa.text("status <> 'done'"))
    op.execute(MENTEE_RISK)
    op.execute(MENTEE_AT_RISK)
    op.execute(f"ALTER FUNCTION mentee_at_risk() OWNER TO {WORKER}")
    for signature in ("mentee_risk(uuid[], timestamptz)", "mentee_at_risk()"):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP}")
    op.execute(f"GRANT EXECUTE ON FUNCTION mentee_risk(uuid[], timestamptz) TO {WORKER}")


def downgrade() -> None:
    op.execute("DROP FUNCTION mentee_at_risk()")
    op.execute("DROP FUNCTION mentee_risk(uuid[], timestamptz)")
    op.drop_index("ix_work_items_unfinished_mentee_id_due_at", table_name="work_items")
