"""Users: mentees, mentors, directors, admins and service accounts in one table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import CheckConstraint, Index, SmallInteger, String, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAt, UpdatedAt

Role = Literal["mentee", "mentor", "director", "admin", "service"]
ROLES: tuple[str, ...] = get_args(Role)
# Limits of the mentor fields, written once: the database checks them (constraints below)
# and every writer takes them from here (app/schemas/limits.py: profile, events, PUT users;
# the admin UI's form validators).
MENTOR_CAPACITY_WEEKLY_MAX = 100  # sessions per week
MENTOR_MAX_MENTEES_MAX = 50  # active mentees at once
EMPTY_AVAILABILITY = text("""'{"timezone": "UTC", "windows": []}'::jsonb""")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role in {ROLES!r}", name="role"),
        CheckConstraint(
            f"mentor_capacity_weekly between 0 and {MENTOR_CAPACITY_WEEKLY_MAX}",
            name="capacity_range"),
        CheckConstraint(f"mentor_max_mentees between 0 and {MENTOR_MAX_MENTEES_MAX}",
                        name="max_mentees_range"),
        CheckConstraint("mentor_buffer_minutes between 0 and 120", name="buffer_minutes"),
        CheckConstraint("mentor_min_notice_hours between 0 and 336", name="min_notice_hours"),
        Index("uq_users_email", func.lower(text("email")), unique=True),
        Index("ix_users_mentors", "id", postgresql_where=text("is_mentor")),
        Index("ix_users_staff", "role", "id",
              postgresql_where=text("role in ('director', 'admin')")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    tier: Mapped[str | None] = mapped_column(String(32))
    interests: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    is_mentor: Mapped[bool] = mapped_column(server_default=text("false"))
    mentor_capacity_weekly: Mapped[int] = mapped_column(server_default=text("10"))
    mentor_max_mentees: Mapped[int] = mapped_column(server_default=text("20"))
    mentor_specialties: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # {"timezone": "Europe/London", "windows": [{"weekday": 0, "start": "09:00", "end": "12:00"}]}
    mentor_availability: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=EMPTY_AVAILABILITY
    )
    # Languages the user speaks (lower-case BCP 47 tags: "en", "pt-br"); the matcher
    # compares them with a mentee's preferred languages.
    languages: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    # Free gap kept before and after each live session; how soon a mentee may book.
    mentor_buffer_minutes: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    mentor_min_notice_hours: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    # Deactivated users keep their history, but no token of theirs is honoured.
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    deactivated_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]  # pseudonymised (app/services/compliance/erasure.py)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
