"""A single `mission.submitted` event in one round trip.

`ingest_mission_submitted(...)` does for one event what `POST /api/v1/events` did with two
statements (app/services/events/inbound.py: `inbox_record()` with the users' lookup, then
the submissions + review items + outbox statement), in the same order and with the same
effects:

1. the inbox: `inbox_record()` (migration 0017: service callers only, SECURITY DEFINER);
   an id seen before returns 'duplicate' and nothing else happens;
2. the mentee: no user with that id and role `mentee` returns 'unknown_mentee' (the caller
   refuses the request, 422, and its transaction rolls back, the inbox row with it);
3. the submission: stored unless already there (a replay keeps its stored row); a decided
   one needs no review ('decided');
4. its `mission_review` item, unless one with its source_key exists ('exists'): the stored
   submission's mentee if there was one, else the event's;
5. `workqueue.item_created` through `outbox_emit()` (the same checks as every emitter), to
   the mentee's active mentor if any ('created').

SECURITY INVOKER, with a fixed search_path: everything runs as the caller's identity role,
so RLS, grants and the audit triggers of `mission_submissions` and `work_items` apply as
they did to the statements it replaces (the audit entries are the same). PL/pgSQL caches
its statements' plans per connection, where the CTE statement with its RLS subplans took
~2 ms per execution on the bench data (custom plans; unnest of one-element arrays).

Revision ID: 0026
Revises: 0027
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP = "mentorship_app"
WORKER = "mentorship_worker"
IDENTITIES = ("mentorship_mentee, mentorship_mentor, mentorship_director, mentorship_admin, "
              "mentorship_service")
SIGNATURE = ("ingest_mission_submitted(uuid, text, text, timestamptz, uuid, uuid, uuid, text, "
             "text, timestamptz, uuid, text, text, text, jsonb, timestamptz, timestamptz, "
             "uuid, jsonb, timestamptz, text)")

FUNCTION = """
CREATE FUNCTION ingest_mission_submitted(
    p_event_id uuid, p_event_type text, p_source text, p_occurred_at timestamptz,
    p_submission_id uuid, p_mentee_id uuid, p_mission_id uuid, p_title text, p_url text,
    p_submitted_at timestamptz,
    p_item_id uuid, p_priority text, p_source_key text, p_item_title text, p_details jsonb,
    p_created_at timestamptz, p_due_at timestamptz,
    p_outbox_id uuid, p_outbox_data jsonb, p_emitted_at timestamptz,
    p_refresh_priority text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_stored_mentee uuid;
  v_status text;
  v_mentee uuid;
  v_item uuid;
  v_mentor uuid;
BEGIN
  PERFORM FROM public.inbox_record(ARRAY[p_event_id], ARRAY[p_event_type], ARRAY[p_source],
                                   ARRAY[p_occurred_at]);
  IF NOT FOUND THEN
    RETURN 'duplicate';
  END IF;
  PERFORM FROM public.users u WHERE u.id = p_mentee_id AND u.role::text = 'mentee';
  IF NOT FOUND THEN
    RETURN 'unknown_mentee';
  END IF;
  SELECT m.mentee_id, m.status INTO v_stored_mentee, v_status
    FROM public.mission_submissions m WHERE m.id = p_submission_id;
  IF NOT FOUND THEN
    -- A concurrent transaction storing the same submission: this waits for it, then
    -- conflicts (nothing stored) and the item below conflicts on its source_key as well.
    INSERT INTO public.mission_submissions (id, mentee_id, mission_id, title, url,
                                            submitted_at)
    VALUES (p_submission_id, p_mentee_id, p_mission_id, p_title, p_url, p_submitted_at)
    ON CONFLICT (id) DO NOTHING;
  ELSIF v_status <> 'pending' THEN
    RETURN 'decided';
  END IF;
  v_mentee := coalesce(v_stored_mentee, p_mentee_id);
  INSERT INTO public.work_items (id, kind, priority, mentee_id, source_key, title, details,
                                 created_at, due_at)
  VALUES (p_item_id, 'mission_review', p_priority, v_mentee, p_source_key, p_item_title,
          p_details, p_created_at, p_due_at)
  ON CONFLICT (source_key) DO NOTHING
  RETURNING id INTO v_item;
  IF v_item IS NULL THEN
    RETURN 'exists';
  END IF;
  SELECT a.mentor_id INTO v_mentor
    FROM public.assignments a WHERE a.mentee_id = v_mentee AND a.ended_at IS NULL;
  PERFORM public.outbox_emit(p_outbox_id, 'workqueue.item_created', p_emitted_at,
                             jsonb_set(p_outbox_data, '{mentee_id}', to_jsonb(v_mentee)),
                             p_refresh_priority, array_remove(ARRAY[v_mentor], NULL));
  RETURN 'created';
END $$"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP}, {WORKER}, {IDENTITIES}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
