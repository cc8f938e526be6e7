"""Audit trail: every change to programme data, by anyone, in the same transaction.

One AFTER trigger per audited table writes a row to `audit_log` with the actor and role of
the transaction (`app.user_id` / `app.role`, or `system` for the workers), the request id
(`app.request_id`), an action (`app.action` when the code names one, else `<table>.<op>`),
the target and the before/after of the changed columns (secrets never). Because the database
writes it, nothing that changes data can forget it: API routes, jobs, the admin UI, seed.

Append-only for every application role: `mentorship_app` and `mentorship_worker` hold no
INSERT, UPDATE, DELETE or TRUNCATE on `audit_log` (the trigger function is SECURITY DEFINER
and owned by the migration's role); only `purge_audit_log` (retention) and
`redact_audit_log` (erasure), also SECURITY DEFINER, remove or redact rows. Under RLS the API
reads it only as admin.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

APP, WORKER = "mentorship_app", "mentorship_worker"
# Programme data; not the plumbing (inbox, outbox, webhook deliveries) nor derived figures.
AUDITED = ("users", "assignments", "sessions", "session_feedback", "work_items", "flags",
           "mission_submissions", "mission_reviews", "readiness_history", "mentee_signals",
           "webhook_endpoints", "matching_runs")

AUDIT_ROW = r"""
create or replace function audit_row() returns trigger
language plpgsql security definer set search_path = public, pg_temp as $$
declare
    before_row jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
    after_row jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
    changes jsonb;
begin
    select jsonb_object_agg(key, jsonb_strip_nulls(jsonb_build_object(
               'before', before_row -> key, 'after', after_row -> key)))
      into changes
      from jsonb_object_keys(coalesce(after_row, before_row)) as key
     where key not in ('updated_at', 'created_at')
       and key !~ '(secret|password|token_hash)'
       and (tg_op <> 'UPDATE' or (before_row -> key) is distinct from (after_row -> key));
    if changes is null and tg_op = 'UPDATE' then
        return null;  -- nothing but timestamps changed
    end if;
    insert into audit_log (actor_id, actor_role, action, target_type, target_id, changes,
                           request_id)
    values (nullif(current_setting('app.user_id', true), '')::uuid,
            coalesce(nullif(current_setting('app.role', true), ''), 'system'),
            coalesce(nullif(current_setting('app.action', true), ''),
                     tg_table_name || '.' || lower(tg_op)),
            tg_table_name,
            coalesce(after_row, before_row) ->> 'id',
            coalesce(changes, '{}'::jsonb),
            nullif(current_setting('app.request_id', true), ''));
    return null;
end $$
"""

PURGE = """
create or replace function purge_audit_log(cutoff timestamptz, batch integer)
returns integer language sql security definer set search_path = public, pg_temp as $$
    with doomed as (
        select id from audit_log where at < cutoff order by id limit batch
    ), gone as (
        delete from audit_log a using doomed where a.id = doomed.id returning 1
    )
    select count(*)::integer from gone
$$
"""

# Erasure: every JSON string equal to one of the user's personal values becomes "[erased]",
# wherever it stands in the entry (target, before or after, another table's row).
REDACT = r"""
create or replace function redact_audit_log(user_id uuid, personal text[])
returns integer language plpgsql security definer set search_path = public, pg_temp as $$
declare
    value text;
    touched integer := 0;
    n integer;
begin
    -- Only the erase route (an admin's transaction) or the workers may redact.
    if coalesce(current_setting('app.role', true), '') <> 'admin'
       and session_user <> 'mentorship_worker' then
        raise insufficient_privilege using message = 'redact_audit_log: admin or worker only';
    end if;
    foreach value in array personal loop
        continue when value is null or length(value) < 2;
        update audit_log
           set changes = replace(changes::text, to_jsonb(value)::text, '"[erased]"')::jsonb
         where strpos(changes::text, to_jsonb(value)::text) > 0;
        get diagnostics n = row_count;
        touched := touched + n;
    end loop;
    return touched;
end $$
"""


def upgrade() -> None:
    op.execute("""
        create table audit_log (
            id bigint generated always as identity primary key,
            at timestamptz not null default clock_timestamp(),
            actor_id uuid,
            actor_role text not null,
            action text not null,
            target_type text not null,
            target_id text,
            changes jsonb not null,
            request_id text
        )""")
    op.execute("create index ix_audit_log_at on audit_log (at)")
    op.execute("create index ix_audit_log_target on audit_log (target_id, id)")
    op.execute("create index ix_audit_log_actor on audit_log (actor_id, id)")
    op.execute(AUDIT_ROW)
    op.execute(PURGE)
    op.execute(REDACT)
    for table in AUDITED:
        op.execute(f"create trigger audit after insert or update or delete on {table} "
                   f"for each row execute function audit_row()")
    for role in (APP, WORKER):
        op.execute(f"revoke all on audit_log from {role}")
        op.execute(f"grant select on audit_log to {role}")
        op.execute("revoke all on function audit_row(), purge_audit_log(timestamptz, integer), "
                   "redact_audit_log(uuid, text[]) from public")
    op.execute(f"grant execute on function purge_audit_log(timestamptz, integer) to {WORKER}")
    op.execute(f"grant execute on function redact_audit_log(uuid, text[]) to {APP}, {WORKER}")
    op.execute("alter table audit_log enable row level security")
    op.execute("alter table audit_log force row level security")
    op.execute("create policy audit_log_admin on audit_log for select "
               "using ((select app_role()) = 'admin')")


def downgrade() -> None:
    for table in AUDITED:
        op.execute(f"drop trigger if exists audit on {table}")
    op.execute("drop function if exists redact_audit_log(uuid, text[])")
    op.execute("drop function if exists purge_audit_log(timestamptz, integer)")
    op.execute("drop function if exists audit_row()")
    op.execute("drop table if exists audit_log")
