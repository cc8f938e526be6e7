"""What a mentee asks of the matcher (PUT /api/v1/mentee/preferences)."""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, UpdatedAt

MAX_TIMEZONE_OFFSET_HOURS = 12  # the widest gap on the 24 h circle: no limit at all


class MenteePreferences(Base):
    __tablename__ = "mentee_preferences"
    __table_args__ = (
        CheckConstraint(
            f"max_timezone_offset_hours between 0 and {MAX_TIMEZONE_OFFSET_HOURS}",
            name="offset_range"),
    )

    mentee_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    specialties: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    languages: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # A hard limit: never matched with a mentor whose UTC offset is further away (null: none).
    max_timezone_offset_hours: Mapped[float | None]
    preferred_mentor_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default="{}"
    )
    updated_at: Mapped[UpdatedAt]
