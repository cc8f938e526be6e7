"""Erasure clears a mentor's time-off reasons.

`erase_personal_data` (migration 0012) also deletes the free text of an erased mentor's
time off (`mentor_time_off.reason`, table added by 0014 after the function was written) and
its copies in the audit trail (the `reason` of those rows' entries: the trigger records the
text when it is written and again as `before` when erasure clears it). The function body is
0012's, extended, not a second copy of it.

Revision ID: 0020
Revises: 0018
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0020"
down_revision = "0018"
branch_labels = None
depends_on = None


def _erasure_0012():
    path = Path(__file__).with_name("0012_erasure.py")
    spec = importlib.util.spec_from_file_location("migration_0012_erasure", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TIME_OFF_TEXT = """
    update mentor_time_off set reason = null where mentor_id = target and reason is not null;
    update audit_log set changes = changes - 'reason'
     where target_type = 'mentor_time_off' and changes ? 'reason'
       and target_id in (select id::text from mentor_time_off where mentor_id = target);"""


def _erase_function(extra_free_text: str) -> str:
    m = _erasure_0012()
    updates = "".join(m.UPDATE.format(table=t, column=c) for t, c in m.JSON_COPIES)
    return m.SCRUB.replace("{updates}", updates).replace("{free_text}",
                                                         m.FREE_TEXT + extra_free_text)


def upgrade() -> None:
    op.execute(_erase_function(TIME_OFF_TEXT))


def downgrade() -> None:
    op.execute(_erase_function(""))
