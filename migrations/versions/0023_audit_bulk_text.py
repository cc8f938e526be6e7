"""The audit trail's bulk inserts and deletes build each entry's JSON as concatenated text.

`audit_statement()` (migration 0019) built an entry of more than 64 rows with one
`json_build_object` per column, the row's object stripped of nulls by `json_strip_nulls`,
then cast to jsonb: about 0.3 s of the 0.5 s the audit of a 16,000-assignment matching
publish cost. For INSERT and DELETE it now concatenates `{"col": {"after": <to_json>}}` (or
`{"col": {}}` for a NULL) as text and casts that once; `json_strip_nulls` is kept only for
the values whose JSON may hold an object (json, jsonb, composites, domains: the nulls inside
them are dropped as before). The entries are the same (tests/compliance/
test_audit_statement.py compares them with migration 0008's row trigger); UPDATE, the small
path (64 rows or fewer), owner and grants are unchanged (CREATE OR REPLACE).

Also: `safe_timezone()` (migration 0011) is PARALLEL UNSAFE now. It catches an error, which
starts a subtransaction, and a query with a parallel plan calling it failed with "cannot start
subtransactions during a parallel operation" (seen on the matching publish's proposals once
the table had statistics).

Revision ID: 0023
Revises: 0022
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

AUDIT_STATEMENT = r"""create or replace function audit_statement() returns trigger
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
    v_plain boolean[];
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
    -- Plain: a column whose JSON holds no object (strings, numbers, booleans, times, enums,
    -- network and bit strings, uuids, arrays of those), so it has no null to strip.
    select array_agg(quote_ident(a.attname) order by a.attnum),
           array_agg(e.typcategory in ('S', 'N', 'B', 'D', 'T', 'E', 'I', 'V')
                     or e.oid = 'uuid'::regtype order by a.attnum)
      into v_columns, v_plain
      from pg_attribute a
      join pg_type t on t.oid = a.atttypid
      join pg_type e on e.oid = case when t.typcategory = 'A' then t.typelem else t.oid end
     where a.attrelid = tg_relid and a.attnum > 0 and not a.attisdropped
       and a.attname <> all (v_skip)
       and a.attname !~ '(secret|password|token_hash)';
    -- One JSON object per row, {column: {"before": .., "after": ..}}, built as json text and
    -- cast once (faster than nesting jsonb). Nulls go as 0008's jsonb_strip_nulls dropped
    -- them: the absent side, nulls inside values, unchanged columns (NULL here).
    if tg_op in ('INSERT', 'DELETE') then
        -- Concatenated text: {"col": {"after": <to_json>}}, {"col": {}} for a NULL. 0019's
        -- json_build_object per column and json_strip_nulls of the whole row cost about
        -- twice as much; only a value that may hold an object (json, jsonb, a composite, a
        -- domain...) goes through json_strip_nulls here.
        select '''{'' || ' || string_agg(format(
                   '%L || coalesce(%s, ''{}'')',
                   to_json(x.c)::text || ': ',
                   case when x.p then format('''{"%s": '' || to_json(%s.%s)::text || ''}''',
                                             s.side, s.alias, x.c)
                        else format('json_strip_nulls((''{"%s": '' || to_json(%s.%s)::text '
                                    '|| ''}'')::json)::text', s.side, s.alias, x.c) end),
                   ' || '', '' || ') || ' || ''}'''
          into v_changes
          from unnest(v_columns, v_plain) x(c, p),
               (select case when tg_op = 'INSERT' then 'after' else 'before' end as side,
                       case when tg_op = 'INSERT' then 'n' else 'o' end as alias) s;
        if tg_op = 'INSERT' then
            v_rows := 'new_rows n';
            v_target := 'n.' || v_key;
        else
            v_rows := 'old_rows o';
            v_target := 'o.' || v_key;
        end if;
    else
        -- Changed as JSON values compare (0008 compared the rows' to_jsonb values).
        select string_agg(format('%L, case when to_jsonb(o.%s) is distinct from to_jsonb(n.%s) '
                                 'then json_build_object(''before'', o.%s, ''after'', n.%s) end',
                                 c, c, c, c, c), ', ')
          into v_changes from unnest(v_columns) c;
        v_changes := format('json_strip_nulls(json_build_object(%s))', v_changes);
        v_rows := format('old_rows o full join new_rows n on o.%s = n.%s', v_key, v_key);
        v_target := format('coalesce(n.%s, o.%s)', v_key, v_key);
    end if;
    execute format($sql$
        insert into audit_log (actor_id, actor_role, action, target_type, target_id, changes,
                               request_id)
        select $1, $2, $3, $4, target, changes, $5
          from (select (%s)::text as target,
                       (%s)::jsonb as changes
                  from %s) entry
         where $6 or changes <> '{}'::jsonb$sql$, v_target, v_changes, v_rows)
    using v_actor, v_role, v_action, tg_table_name::text, v_request,
          tg_op <> 'UPDATE';  -- an update that changed nothing audited writes no entry
    return null;
end $$
"""


def _audit_statement_0019() -> str:
    path = Path(__file__).with_name("0019_audit_per_statement.py")
    spec = importlib.util.spec_from_file_location("audit_0019", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.AUDIT_STATEMENT


def upgrade() -> None:
    op.execute(AUDIT_STATEMENT)
    op.execute("alter function safe_timezone(text) parallel unsafe")


def downgrade() -> None:
    op.execute("alter function safe_timezone(text) parallel safe")
    op.execute(_audit_statement_0019())
