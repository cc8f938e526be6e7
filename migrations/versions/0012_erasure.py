"""Erasure: the tombstone and the scrub of an erased user's values from event payloads.

`users.erased_at` marks a pseudonymised user: the id stays (foreign keys, aggregates) and a
later upsert of it is refused (409 `erased`). `scrub_personal_values` replaces every JSON
string equal to one of the user's personal values with "[erased]" wherever events and
the trail carry copies of them (outbox payloads, webhook deliveries, work item details,
signals, matching run reports, audit entries); SECURITY DEFINER, because no application
role may otherwise update the audit trail, and callable only by an admin's transaction or
the workers.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON_COPIES = (("outbox_events", "data"), ("webhook_deliveries", "payload"),
               ("work_items", "details"), ("mentee_signals", "data"),
               ("matching_runs", "unplaced"), ("audit_log", "changes"))

SCRUB = """
create or replace function scrub_personal_values(personal text[])
returns integer language plpgsql security definer set search_path = public, pg_temp as $$
declare
    value text;
    touched integer := 0;
    n integer;
begin
    if coalesce(current_setting('app.role', true), '') <> 'admin'
       and session_user <> 'mentorship_worker' then
        raise insufficient_privilege using message = 'scrub_personal_values: admin or worker only';
    end if;
    foreach value in array personal loop
        continue when value is null or length(value) < 2;
        {updates}
    end loop;
    return touched;
end $$
"""
UPDATE = """
        update {table} set {column} =
               replace({column}::text, to_jsonb(value)::text, '"[erased]"')::jsonb
         where strpos({column}::text, to_jsonb(value)::text) > 0;
        get diagnostics n = row_count;
        touched := touched + n;"""


def upgrade() -> None:
    op.execute("alter table users add column erased_at timestamptz")
    updates = "".join(UPDATE.format(table=t, column=c) for t, c in JSON_COPIES)
    op.execute(SCRUB.replace("{updates}", updates))
    op.execute("drop function redact_audit_log(uuid, text[])")  # superseded: audit included
    op.execute("revoke all on function scrub_personal_values(text[]) from public")
    op.execute("grant execute on function scrub_personal_values(text[]) "
               "to mentorship_app, mentorship_worker")


def downgrade() -> None:
    op.execute("drop function if exists scrub_personal_values(text[])")
    op.execute("alter table users drop column if exists erased_at")
