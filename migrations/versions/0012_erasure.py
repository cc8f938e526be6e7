"""Erasure: the tombstone, and one function that removes what was written by or about a user.

`users.erased_at` marks a pseudonymised user: the id stays (foreign keys, aggregates) and a
later upsert of it is refused (409 `erased`). `erase_personal_data(user, values)` deletes
the free text written by or about the user (session agendas and notes, feedback comments,
flag notes, review feedback, submission titles, work item titles and notes) and replaces
every occurrence of one of their personal values with "[erased]" wherever events
and the trail carry copies (outbox payloads, webhook deliveries, work item details, signals,
matching run reports, audit entries). SECURITY DEFINER, because RLS and the append-only
grants rightly stop the API role from touching most of these rows; callable only by an
admin's transaction or the workers.

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

FREE_TEXT = """
    update sessions set agenda = null, mentor_notes = null, cancel_reason = null
     where mentee_id = target or mentor_id = target;
    update session_feedback set comment = null where mentee_id = target;
    update flags set note = null, resolution = null, category = 'erased'
     where mentee_id = target;
    update mission_submissions set title = '[erased]', url = null where mentee_id = target;
    update mission_reviews set feedback = null where mentee_id = target;
    update work_items set title = '[erased]', note = null, details = '{}'
     where mentee_id = target;
    -- Nothing more reaches the user's stream (the relay would re-create it).
    update outbox_events set recipients = array_remove(recipients, target)
     where published_at is null and target = any(recipients);"""

SCRUB = """
create or replace function erase_personal_data(target uuid, personal text[])
returns integer language plpgsql security definer set search_path = public, pg_temp as $$
declare
    value text;
    escaped text;
    touched integer := 0;
    n integer;
begin
    if coalesce(current_setting('app.role', true), '') <> 'admin'
       and session_user <> 'mentorship_worker' then
        raise insufficient_privilege using message = 'erase_personal_data: admin or worker only';
    end if;
    {free_text}
    foreach value in array personal loop
        continue when value is null or length(value) < 3;
        -- The value as it appears inside a JSON string (escaped, without the quotes), so
        -- it goes from longer texts too ("Call Ada about ...").
        escaped := substr(to_jsonb(value)::text, 2, length(to_jsonb(value)::text) - 2);
        {updates}
    end loop;
    return touched;
end $$
"""
UPDATE = """
        update {table} set {column} = replace({column}::text, escaped, '[erased]')::jsonb
         where strpos({column}::text, escaped) > 0;
        get diagnostics n = row_count;
        touched := touched + n;"""


def upgrade() -> None:
    op.execute("alter table users add column erased_at timestamptz")
    updates = "".join(UPDATE.format(table=t, column=c) for t, c in JSON_COPIES)
    op.execute(SCRUB.replace("{updates}", updates).replace("{free_text}", FREE_TEXT))
    op.execute("drop function redact_audit_log(uuid, text[])")  # superseded: audit included
    op.execute("revoke all on function erase_personal_data(uuid, text[]) from public")
    op.execute("grant execute on function erase_personal_data(uuid, text[]) "
               "to mentorship_app, mentorship_worker")


def downgrade() -> None:
    op.execute("drop function if exists erase_personal_data(uuid, text[])")
    op.execute("alter table users drop column if exists erased_at")
