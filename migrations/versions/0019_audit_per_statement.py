"""The audit trail per statement: bulk writes (a matching publish, a committed run, the SLA
sweep) audit their rows in one INSERT ... SELECT instead of one trigger call per row.

- `audit_statement()` replaces the row trigger `audit_row()` of migration 0008 on every
  audited table: three AFTER ... FOR EACH STATEMENT triggers (`audit_insert`,
  `audit_update`, `audit_delete`; Postgres allows transition tables on one event per
  trigger) read the statement's rows from its transition tables (REFERENCING NEW TABLE /
  OLD TABLE). The entries are the same as before: actor, role, action (`app.action` or
  `<table>.<op>`), target, request id, time (`clock_timestamp()` per entry) and the
  before/after of the changed columns (nulls stripped, secrets and timestamps never; an
  update that changes nothing else writes no entry). Two deliberate differences:
  `matching_runs.heartbeat_at` is not audited (a matcher's lease renewal every few seconds
  is not a decision: migration 0008 wrote one entry per beat), and the target of a
  `mentee_preferences` entry is the mentee (its key; 0008 looked for an `id` column and
  wrote none). An update is paired old/new by the table's key; one that changed the key
  itself shows as a removal and an addition.
- Up to 64 rows (an API request's writes) go through static statements over the rows'
  JSON (planned once per session); more go through a statement built for the table from
  the catalogue (columns as they are now, so a column a later migration adds is audited
  without touching the function), cheaper per row but planned at each use. A table a later migration audits gets
  the three triggers: `AUDIT_TRIGGERS` below shows how (trigger arguments: key column,
  then columns left out).
- Still append-only: `audit_statement()` is SECURITY DEFINER, owned by the migrating
  account like `audit_row()`; the roles' grants on `audit_log` do not change.
- `assignments_sync_waiting` (migration 0011) on INSERT becomes a statement trigger too (one
  DELETE from `waiting_mentees` for all the new assignments); ending an assignment keeps
  its row trigger (UPDATE OF ended_at: one row at a time in practice).

`audit_row()` stays defined (a branch written before this migration may still create a
row trigger with it; it writes the same entries, only slower).

Revision ID: 0019
Revises: 0018
"""

from alembic import op
from sqlalchemy import text

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

WORKER = "mentorship_worker"
# Never audited on any table (0008's rule): updated_at, created_at, secrets. Per table, more columns left out of the trail (not decisions, only bookkeeping).
SKIPPED = {"matching_runs": ("heartbeat_at",)}

AUDIT_STATEMENT = r"""
create or replace function audit_statement() returns trigger
language plpgsql security definer set search_path = public, pg_temp as $$
declare
    v_key text := quote_ident(tg_argv[0]);
    v_skip text[] := array['updated_at', 'created_at'] || tg_argv[1:];
    v_actor uuid := nullif(current_setting('app.user_id', true), '')::uuid;
    v_role text := coalesce(nullif(current_setting('app.role', true), ''), 'system');
    v_action text := coalesce(nullif(current_setting('app.action', true), ''),
                              tg_table_name || '.' || lower(tg_op));
    v_request text := nullif(current_setting('app.request_id', true), '');
    v_columns text[];
    v_changes text;
    v_rows text;
    v_target text;
    v_count integer;
begin
    -- A few rows (an API request's writes): static statements, planned once per session,
    -- cheaper than building and planning the per-table statement below (which is cheaper
    -- per row: the way for bulk writes). Both write the same entries.
    if tg_op = 'DELETE' then  -- each statement names only the transition tables it has
        select count(*) into v_count from (select from old_rows limit 65) o;
    else
        select count(*) into v_count from (select from new_rows limit 65) n;
    end if;
    if v_count <= 64 then
        if tg_op = 'INSERT' then
            insert into audit_log (actor_id, actor_role, action, target_type, target_id,
                                   changes, request_id)
            select v_actor, v_role, v_action, tg_table_name, r.after_row ->> tg_argv[0],
                   coalesce((select jsonb_object_agg(e.key, jsonb_strip_nulls(
                                 jsonb_build_object('before', null::jsonb, 'after', e.value)))
                               from jsonb_each(r.after_row) e
                              where e.key <> all (v_skip)
                                and e.key !~ '(secret|password|token_hash)'), '{}'::jsonb),
                   v_request
              from (select to_jsonb(n) as after_row from new_rows n offset 0) r;
        elsif tg_op = 'DELETE' then
            insert into audit_log (actor_id, actor_role, action, target_type, target_id,
                                   changes, request_id)
            select v_actor, v_role, v_action, tg_table_name, r.before_row ->> tg_argv[0],
                   coalesce((select jsonb_object_agg(e.key, jsonb_strip_nulls(
                                 jsonb_build_object('before', e.value, 'after', null::jsonb)))
                               from jsonb_each(r.before_row) e
                              where e.key <> all (v_skip)
                                and e.key !~ '(secret|password|token_hash)'), '{}'::jsonb),
                   v_request
              from (select to_jsonb(o) as before_row from old_rows o offset 0) r;
        else
            insert into audit_log (actor_id, actor_role, action, target_type, target_id,
                                   changes, request_id)
            select v_actor, v_role, v_action, tg_table_name,
                   coalesce(c.after_row, c.before_row) ->> tg_argv[0], c.changes, v_request
              from (select a.after_row, b.before_row,
                           (select jsonb_object_agg(k.key, jsonb_strip_nulls(jsonb_build_object(
                                       'before', b.before_row -> k.key,
                                       'after', a.after_row -> k.key)))
                              from jsonb_object_keys(coalesce(a.after_row, b.before_row)) k(key)
                             where k.key <> all (v_skip)
                               and k.key !~ '(secret|password|token_hash)'
                               and (b.before_row -> k.key)
                                   is distinct from (a.after_row -> k.key)) as changes
                      from (select to_jsonb(n) as after_row from new_rows n offset 0) a
                      full join (select to_jsonb(o) as before_row from old_rows o offset 0) b
                        on (b.before_row -> tg_argv[0]) = (a.after_row -> tg_argv[0])) c
             where c.changes is not null;
        end if;
        return null;
    end if;
    -- The table's columns as they are now, less timestamps, secrets and the skipped ones.
    select array_agg(quote_ident(a.attname) order by a.attnum) into v_columns
      from pg_attribute a
     where a.attrelid = tg_relid and a.attnum > 0 and not a.attisdropped
       and a.attname <> all (v_skip)
       and a.attname !~ '(secret|password|token_hash)';
    -- One JSON object per row, {column: {"before": .., "after": ..}}, built as json text and
    -- cast once (faster than nesting jsonb); json_strip_nulls drops the absent side and, as
    -- 0008's jsonb_strip_nulls did, nulls inside values and unchanged columns (NULL here).
    if tg_op = 'INSERT' then
        select string_agg(format('%L, json_build_object(''after'', n.%s)', c, c), ', ')
          into v_changes from unnest(v_columns) c;
        v_rows := 'new_rows n';
        v_target := 'n.' || v_key;
    elsif tg_op = 'DELETE' then
        select string_agg(format('%L, json_build_object(''before'', o.%s)', c, c), ', ')
          into v_changes from unnest(v_columns) c;
        v_rows := 'old_rows o';
        v_target := 'o.' || v_key;
    else
        -- Changed as JSON values compare (0008 compared the rows' to_jsonb values).
        select string_agg(format('%L, case when to_jsonb(o.%s) is distinct from to_jsonb(n.%s) '
                                 'then json_build_object(''before'', o.%s, ''after'', n.%s) end',
                                 c, c, c, c, c), ', ')
          into v_changes from unnest(v_columns) c;
        v_rows := format('old_rows o full join new_rows n on o.%s = n.%s', v_key, v_key);
        v_target := format('coalesce(n.%s, o.%s)', v_key, v_key);
    end if;
    execute format($sql$
        insert into audit_log (actor_id, actor_role, action, target_type, target_id, changes,
                               request_id)
        select $1, $2, $3, $4, target, changes, $5
          from (select (%s)::text as target,
                       json_strip_nulls(json_build_object(%s))::jsonb as changes
                  from %s) entry
         where $6 or changes <> '{}'::jsonb$sql$, v_target, v_changes, v_rows)
    using v_actor, v_role, v_action, tg_table_name::text, v_request,
          tg_op <> 'UPDATE';  -- an update that changed nothing audited writes no entry
    return null;
end $$
"""

# The three statement triggers of one audited table.
AUDIT_TRIGGERS = """
create trigger audit_insert after insert on {table} referencing new table as new_rows
    for each statement execute function audit_statement({args});
create trigger audit_update after update on {table}
    referencing old table as old_rows new table as new_rows
    for each statement execute function audit_statement({args});
create trigger audit_delete after delete on {table} referencing old table as old_rows
    for each statement execute function audit_statement({args})
"""

WAITING_ON_INSERT = """
create function assignments_sync_waiting_insert() returns trigger
language plpgsql security definer set search_path = pg_catalog, public as $$
begin
  delete from public.waiting_mentees w using new_rows n
   where n.ended_at is null and w.mentee_id = n.mentee_id;
  return null;
end $$"""


def _audited_tables() -> list[tuple[str, str]]:
    """(table, key column) of every table with 0008's row trigger `audit`."""
    rows = op.get_bind().execute(text("""
        select c.relname, a.attname
          from pg_trigger t
          join pg_class c on c.oid = t.tgrelid
          join pg_index i on i.indrelid = c.oid and i.indisprimary
          join pg_attribute a on a.attrelid = c.oid and a.attnum = i.indkey[0]
         where t.tgname = 'audit' and not t.tgisinternal
         order by c.relname""")).all()
    return [(row[0], row[1]) for row in rows]


def _args(table: str, key: str) -> str:
    return ", ".join(f"'{name}'" for name in (key, *SKIPPED.get(table, ())))


def upgrade() -> None:
    op.execute(AUDIT_STATEMENT)
    op.execute("revoke all on function audit_statement() from public")
    for table, key in _audited_tables():
        op.execute(f"drop trigger audit on {table}")
        for statement in AUDIT_TRIGGERS.format(table=table, args=_args(table, key)).split(";"):
            op.execute(statement)
    op.execute(WAITING_ON_INSERT)
    op.execute(f"alter function assignments_sync_waiting_insert() owner to {WORKER}")
    op.execute("revoke all on function assignments_sync_waiting_insert() from public")
    op.execute("drop trigger assignments_sync_waiting on assignments")
    op.execute("""
        create trigger assignments_sync_waiting_insert after insert on assignments
        referencing new table as new_rows
        for each statement execute function assignments_sync_waiting_insert()""")
    op.execute("""
        create trigger assignments_sync_waiting after update of ended_at on assignments
        for each row execute function assignments_sync_waiting()""")


def downgrade() -> None:
    op.execute("drop trigger assignments_sync_waiting on assignments")
    op.execute("drop trigger assignments_sync_waiting_insert on assignments")
    op.execute("drop function assignments_sync_waiting_insert()")
    op.execute("""
        create trigger assignments_sync_waiting after insert or update of ended_at
        on assignments for each row execute function assignments_sync_waiting()""")
    tables = op.get_bind().execute(text("""
        select distinct c.relname from pg_trigger t join pg_class c on c.oid = t.tgrelid
         where t.tgname = 'audit_insert' and not t.tgisinternal""")).scalars().all()
    for table in tables:
        for name in ("audit_insert", "audit_update", "audit_delete"):
            op.execute(f"drop trigger {name} on {table}")
        op.execute(f"create trigger audit after insert or update or delete on {table} "
                   f"for each row execute function audit_row()")
    op.execute("drop function audit_statement()")
