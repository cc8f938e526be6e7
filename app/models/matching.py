"""Matcher runs and the proposals of dry runs (app/services/matching)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UUIDPk

RUN_STATUSES = ("queued", "running", "done", "failed", "skipped")


class MatchingRun(Base):
    __tablename__ = "matching_runs"
    __table_args__ = (
        CheckConstraint(f"status in {RUN_STATUSES!r}", name="status"),
        Index("ix_matching_runs_running", "heartbeat_at",
              postgresql_where=text("status = 'running'")),
        # The latest finished run (the waiting list's reasons): migration 0027.
        Index("ix_matching_runs_done_finished_at", text("finished_at DESC"),
              postgresql_where=text("status = 'done' AND finished_at IS NOT NULL")),
    )

    id: Mapped[UUIDPk]
    job_id: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    requested_by: Mapped[uuid.UUID | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    assigned_count: Mapped[int | None]
    unplaced_count: Mapped[int | None]
    total_fit: Mapped[float | None]
    duration_ms: Mapped[int | None]
    solver_ms: Mapped[int | None]
    # mentee id -> reason, for every mentee the run could not place
    unplaced: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[CreatedAt]
    # A dry run writes proposals instead of assignments; a director publishes them later.
    dry_run: Mapped[bool] = mapped_column(server_default=text("false"))
    # The normalised weights the run used (sum 1), recorded whatever their source.
    weights: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The run's scope as requested ({"mentee_ids": [...] | null, "mentor_ids": ...}): a
    # re-run after a crash repeats it.
    scope: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # Tries so far; a worker holding the run renews `heartbeat_at` (its lease).
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    heartbeat_at: Mapped[datetime | None]
    published_at: Mapped[datetime | None]
    published_by: Mapped[uuid.UUID | None]
    # What the publish did: counts and the proposals skipped with their reason.
    publish_result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # When retention deleted the proposals of this dry run (never published, finished
    # `retention_matching_dry_runs_days` ago); its `matching_unplaced` rows went with them.
    proposals_expired_at: Mapped[datetime | None]


class MatchingUnplaced(Base):
    """A finished run's `unplaced` map as rows (mentee -> reason), kept by a trigger on
    `matching_runs` (migrations 0027, 0029) for runs whose status is `done` and whose
    proposals have not expired: the waiting list reads 50 of them by key instead of
    decompressing the whole map. Never written by the app."""

    __tablename__ = "matching_unplaced"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("matching_runs.id", ondelete="CASCADE"), primary_key=True
    )
    mentee_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    reason: Mapped[str | None] = mapped_column(Text)


class MatchingProposal(Base):
    """One proposed pair of a dry run, with its fit and each weighted term of it."""

    __tablename__ = "matching_proposals"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("matching_runs.id", ondelete="CASCADE"), primary_key=True
    )
    mentee_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    mentor_id: Mapped[uuid.UUID]
    fit: Mapped[float]
    specialty: Mapped[float]
    timezone: Mapped[float]
    load: Mapped[float]
    language: Mapped[float]
    preference: Mapped[float]
    reasons: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
