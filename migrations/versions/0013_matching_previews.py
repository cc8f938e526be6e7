"""Matching as directors run it: dry runs with proposals, publish, mentee preferences,
languages, run leases; one set of limits for the mentor fields.

- users: `languages`; `mentor_capacity_weekly` 0..100 and `mentor_max_mentees` 0..50
  (app/models/user.py; values beyond are clamped first so the constraint can be added).
- mentee_preferences: one row per mentee; the mentee reads and writes their own, staff read.
- matching_runs: dry run flag, weights, scope, attempts and heartbeat (the lease a crashed
  run is detected by), publish record. Staff may update a run (publishing it).
- mentee_preferences is audited (migration 0008's trigger).
- matching_proposals: the proposed pairs of a dry run, each weighted term in its column.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

APP = "mentorship_app"
WORKER = "mentorship_worker"
ME = "(select app_user_id())"
STAFF = "(select app_role()) in ('director', 'admin')"
# Copied from app/models (a migration must not change when the model does).
CAPACITY_MAX, MENTEES_MAX, OFFSET_MAX = 100, 50, 12


def upgrade() -> None:
    op.add_column("users", sa.Column("languages", postgresql.ARRAY(sa.Text()),
                                     server_default="{}", nullable=False))
    op.execute(f"update users set mentor_capacity_weekly = least(mentor_capacity_weekly, "
               f"{CAPACITY_MAX}), mentor_max_mentees = least(mentor_max_mentees, {MENTEES_MAX}) "
               f"where mentor_capacity_weekly > {CAPACITY_MAX} "
               f"or mentor_max_mentees > {MENTEES_MAX}")
    op.drop_constraint(op.f("ck_users_capacity_nonneg"), "users", type_="check")
    op.drop_constraint(op.f("ck_users_max_mentees_nonneg"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_capacity_range"), "users",
                               f"mentor_capacity_weekly between 0 and {CAPACITY_MAX}")
    op.create_check_constraint(op.f("ck_users_max_mentees_range"), "users",
                               f"mentor_max_mentees between 0 and {MENTEES_MAX}")

    op.create_table(
        "mentee_preferences",
        sa.Column("mentee_id", sa.Uuid(), nullable=False),
        sa.Column("specialties", postgresql.ARRAY(sa.Text()), server_default="{}",
                  nullable=False),
        sa.Column("languages", postgresql.ARRAY(sa.Text()), server_default="{}",
                  nullable=False),
        sa.Column("max_timezone_offset_hours", sa.Float(), nullable=True),
        sa.Column("preferred_mentor_ids", postgresql.ARRAY(sa.Uuid()), server_default="{}",
                  nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
        sa.CheckConstraint(f"max_timezone_offset_hours between 0 and {OFFSET_MAX}",
                           name=op.f("ck_mentee_preferences_offset_range")),
        sa.ForeignKeyConstraint(["mentee_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_mentee_preferences_mentee_id_users")),
        sa.PrimaryKeyConstraint("mentee_id", name=op.f("pk_mentee_preferences")),
    )

    for _name, column in [
        ("dry_run", sa.Column("dry_run", sa.Boolean(), server_default=sa.text("false"),
                              nullable=False)),
        ("weights", sa.Column("weights", postgresql.JSONB(), nullable=True)),
        ("scope", sa.Column("scope", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"),
                            nullable=False)),
        ("attempts", sa.Column("attempts", sa.Integer(), server_default=sa.text("0"),
                               nullable=False)),
        ("heartbeat_at", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)),
        ("published_at", sa.Column("published_at", sa.DateTime(timezone=True), nullable=True)),
        ("published_by", sa.Column("published_by", sa.Uuid(), nullable=True)),
        ("publish_result", sa.Column("publish_result", postgresql.JSONB(), nullable=True)),
    ]:
        op.add_column("matching_runs", column)
    # The lease sweep looks only at running runs.
    op.create_index("ix_matching_runs_running", "matching_runs", ["heartbeat_at"],
                    postgresql_where=sa.text("status = 'running'"))

    op.create_table(
        "matching_proposals",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("mentee_id", sa.Uuid(), nullable=False),
        sa.Column("mentor_id", sa.Uuid(), nullable=False),
        sa.Column("fit", sa.Float(), nullable=False),
        sa.Column("specialty", sa.Float(), nullable=False),
        sa.Column("timezone", sa.Float(), nullable=False),
        sa.Column("load", sa.Float(), nullable=False),
        sa.Column("language", sa.Float(), nullable=False),
        sa.Column("preference", sa.Float(), nullable=False),
        sa.Column("reasons", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["matching_runs.id"], ondelete="CASCADE",
                                name=op.f("fk_matching_proposals_run_id_matching_runs")),
        sa.PrimaryKeyConstraint("run_id", "mentee_id", name=op.f("pk_matching_proposals")),
    )

    for table in ("mentee_preferences", "matching_proposals"):
        for role in (APP, WORKER):
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role}")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY mentee_preferences_select ON mentee_preferences FOR SELECT "
               f"USING ({STAFF} or mentee_id = {ME})")
    op.execute(f"CREATE POLICY mentee_preferences_insert ON mentee_preferences FOR INSERT "
               f"WITH CHECK (mentee_id = {ME})")
    op.execute(f"CREATE POLICY mentee_preferences_update ON mentee_preferences FOR UPDATE "
               f"USING (mentee_id = {ME}) WITH CHECK (mentee_id = {ME})")
    # Erasure (an admin's request) deletes a mentee's preferences.
    op.execute("CREATE POLICY mentee_preferences_delete ON mentee_preferences FOR DELETE "
               "USING ((select app_role()) = 'admin')")
    op.execute(f"CREATE POLICY matching_proposals_staff ON matching_proposals FOR SELECT "
               f"USING ({STAFF})")
    op.execute(f"CREATE POLICY matching_runs_update ON matching_runs FOR UPDATE "
               f"USING ({STAFF}) WITH CHECK ({STAFF})")
    # Preferences are programme data: the audit trail of migration 0008 records them.
    op.execute("create trigger audit after insert or update or delete on mentee_preferences "
               "for each row execute function audit_row()")


def downgrade() -> None:
    op.execute("DROP POLICY IF EXISTS matching_runs_update ON matching_runs")
    op.drop_table("matching_proposals")
    op.drop_index("ix_matching_runs_running", table_name="matching_runs")
    for name in ("publish_result", "published_by", "published_at", "heartbeat_at", "attempts",
                 "scope", "weights", "dry_run"):
        op.drop_column("matching_runs", name)
    op.drop_table("mentee_preferences")
    op.drop_constraint(op.f("ck_users_max_mentees_range"), "users", type_="check")
    op.drop_constraint(op.f("ck_users_capacity_range"), "users", type_="check")
    op.create_check_constraint(op.f("ck_users_capacity_nonneg"), "users", "mentor_capacity_weekly >= 0")
    op.create_check_constraint(op.f("ck_users_max_mentees_nonneg"), "users", "mentor_max_mentees >= 0")
    op.drop_column("users", "languages")
