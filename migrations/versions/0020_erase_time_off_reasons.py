"""Erasure clears a mentor's time-off reasons.

`erase_personal_data` (migration 0012) also deletes the free text of an erased mentor's
time off (`mentor_time_off.reason`, table added by 0014 after the function was written) and
its copies in the audit trail (the `reason` of those rows' entries: the trigger records the
text when it is written and again as `before` when erasure clears it). The function body is
0012's (with 0017's role check), extended in place, not a second copy of it.

Revision ID: 0020
Revises: 0019
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# The function's body as migrations 0012 and 0017 left it, extended in place (read back
# with pg_get_functiondef, as 0017 does): its checks and the rest of its body stay theirs.
ANCHOR = "where published_at is null and target = any(recipients);"
TIME_OFF_TEXT = """
    update mentor_time_off set reason = null where mentor_id = target and reason is not null;
    update audit_log set changes = changes - 'reason'
     where target_type = 'mentor_time_off' and (changes -> 'reason') is not null
       and target_id in (select id::text from mentor_time_off where mentor_id = target);"""


def _rewrite(old: str, new: str) -> None:
    op.execute(f"""
        DO $$ DECLARE definition text; BEGIN
          SELECT pg_get_functiondef('public.erase_personal_data(uuid, text[])'::regprocedure)
            INTO definition;
          IF position($a${old}$a$ in definition) = 0 THEN
            RAISE EXCEPTION 'erase_personal_data: the text to replace was not found';
          END IF;
          EXECUTE replace(definition, $a${old}$a$, $a${new}$a$);
        END $$""")


def upgrade() -> None:
    _rewrite(ANCHOR, ANCHOR + TIME_OFF_TEXT)


def downgrade() -> None:
    _rewrite(ANCHOR + TIME_OFF_TEXT, ANCHOR)
