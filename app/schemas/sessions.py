"""API shapes for sessions, feedback, the calendar and the mentor's profile."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from app.schemas.limits import Languages, MentorCapacityWeekly, MentorMaxMentees

SessionStatus = Literal["scheduled", "completed", "no_show", "cancelled"]
DURATION = "Whole minutes, 15 to 240."

_START = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")  # 00:00 .. 23:59
_END = re.compile(r"^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$")  # 00:00 .. 24:00


def _storable(value: str) -> str:
    """Postgres refuses NUL in text and UTF-8 has no lone surrogates: 422, not a 500."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no unpaired surrogates)") from exc
    return value


# Free text stored in the database.
StoredText = Annotated[str, AfterValidator(_storable)]


def minutes_of(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


# --- sessions ---------------------------------------------------------------------------------

class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mentee_id: uuid.UUID
    starts_at: AwareDatetime = Field(description="RFC 3339 with an offset; in the future.")
    duration_minutes: int = Field(ge=15, le=240, description=DURATION)
    agenda: StoredText | None = Field(None, max_length=4000)


class SessionUpdate(BaseModel):
    """Exactly one kind of change: reschedule (`starts_at` and/or `duration_minutes`),
    cancel (`status: cancelled`, optional `reason`) or complete (`status: completed` or
    `no_show`, optional `mentor_notes`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [
            {"starts_at": "2027-03-01T09:00:00+00:00", "duration_minutes": 45},
            {"status": "cancelled", "reason": "Mentee is ill"},
            {"status": "completed", "mentor_notes": "Went through the portfolio"},
        ]},
    )

    starts_at: AwareDatetime | None = None
    duration_minutes: int | None = Field(None, ge=15, le=240, description=DURATION)
    status: SessionStatus | None = None
    reason: StoredText | None = Field(None, max_length=2000)
    mentor_notes: StoredText | None = Field(None, max_length=10000)

    @property
    def is_reschedule(self) -> bool:
        return self.starts_at is not None or self.duration_minutes is not None

    @model_validator(mode="after")
    def _one_kind_of_change(self) -> Self:
        if self.is_reschedule and self.status is not None:
            raise ValueError("reschedule (starts_at, duration_minutes) or change the status, "
                             "not both")
        if not self.is_reschedule and self.status is None:
            raise ValueError("give starts_at / duration_minutes, or a status")
        if self.reason is not None and self.status != "cancelled":
            raise ValueError("reason goes with status 'cancelled'")
        if self.mentor_notes is not None and self.status not in ("completed", "no_show"):
            raise ValueError("mentor_notes go with status 'completed' or 'no_show'")
        return self


class SessionPublic(BaseModel):
    """A session as both parties see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    mentor_id: uuid.UUID
    mentee_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    status: SessionStatus
    meeting_url: str | None
    agenda: str | None
    cancel_reason: str | None
    sequence: int = Field(description="Raised on every reschedule or cancellation "
                                      "(the calendar event's SEQUENCE).")
    created_at: datetime
    updated_at: datetime


class MenteeSessionCreate(BaseModel):
    """A mentee books with their current mentor."""

    model_config = ConfigDict(extra="forbid")

    starts_at: AwareDatetime = Field(description="RFC 3339 with an offset; in the future, "
                                                 "after the mentor's minimum notice.")
    duration_minutes: int = Field(ge=15, le=240, description=DURATION)
    agenda: StoredText | None = Field(None, max_length=4000)


class MenteeSessionUpdate(BaseModel):
    """Reschedule (`starts_at` and/or `duration_minutes`) or cancel (`status: cancelled`,
    optional `reason`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"starts_at": "2027-03-01T09:00:00+00:00"},
        {"status": "cancelled", "reason": "Exam that day"},
    ]})

    starts_at: AwareDatetime | None = None
    duration_minutes: int | None = Field(None, ge=15, le=240, description=DURATION)
    status: Literal["cancelled"] | None = None
    reason: StoredText | None = Field(None, max_length=2000)

    @property
    def is_reschedule(self) -> bool:
        return self.starts_at is not None or self.duration_minutes is not None

    @model_validator(mode="after")
    def _one_kind_of_change(self) -> Self:
        if self.is_reschedule == (self.status is not None):
            raise ValueError("reschedule (starts_at, duration_minutes) or cancel "
                             "(status: cancelled), exactly one")
        if self.reason is not None and self.status != "cancelled":
            raise ValueError("reason goes with status 'cancelled'")
        return self


class MentorSessionPublic(SessionPublic):
    mentor_notes: str | None


class MenteeSessionPublic(SessionPublic):
    feedback_given: bool = False


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)
    comment: StoredText | None = Field(None, max_length=4000)


class FeedbackPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    session_id: uuid.UUID
    mentor_id: uuid.UUID
    mentee_id: uuid.UUID
    rating: int
    comment: str | None
    created_at: datetime


# --- mentor profile ---------------------------------------------------------------------------

class AvailabilityWindow(BaseModel):
    """A weekly window, in local time of the availability's time zone."""

    model_config = ConfigDict(extra="forbid")

    weekday: int = Field(ge=0, le=6, description="0 = Monday ... 6 = Sunday")
    start: str = Field(description='"HH:MM", 00:00 to 23:59', examples=["09:00"])
    end: str = Field(description='"HH:MM", after start; "24:00" is midnight at the end of '
                                 "the day", examples=["12:00"])

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        if not _START.match(value):
            raise ValueError('start must be "HH:MM" between 00:00 and 23:59')
        return value

    @field_validator("end")
    @classmethod
    def _end(cls, value: str) -> str:
        if not _END.match(value):
            raise ValueError('end must be "HH:MM" between 00:00 and 24:00')
        return value

    @model_validator(mode="after")
    def _start_before_end(self) -> Self:
        if minutes_of(self.start) >= minutes_of(self.end):
            raise ValueError("start must be before end")
        return self


class Availability(BaseModel):
    """A mentor's weekly windows, local to `timezone`: the one shape for the profile, the
    user upsert and `user.upserted`."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(description="IANA time zone name", examples=["Europe/London"])
    windows: list[AvailabilityWindow] = Field(default_factory=list, max_length=100)

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class CapacityPublic(BaseModel):
    iso_week: str = Field(description="The ISO week in the mentor's time zone, e.g. 2027-W09")
    weekly_slots_used: int
    weekly_slots_total: int
    weekly_slots: str = Field(examples=["7/10 weekly slots"])
    mentees_active: int
    mentees_max: int
    utilization: float = Field(description="weekly_slots_used / weekly_slots_total")


class MentorProfileUpdate(BaseModel):
    """The whole editable profile (PUT replaces it)."""

    model_config = ConfigDict(extra="forbid")

    mentor_capacity_weekly: MentorCapacityWeekly
    mentor_max_mentees: MentorMaxMentees
    mentor_specialties: list[str] = Field(max_length=50)
    mentor_availability: Availability
    languages: Languages | None = Field(
        None, description="Languages the mentor speaks. Omitted: left as they are.")
    mentor_buffer_minutes: int | None = Field(
        None, ge=0, le=120, description="Minutes kept free before and after each live "
        "session (booking routes of both people). Omitted: unchanged.")
    mentor_min_notice_hours: int | None = Field(
        None, ge=0, le=336, description="How soon a mentee may book a new session (you "
        "may book your own at shorter notice). Omitted: unchanged.")

    @field_validator("mentor_specialties")
    @classmethod
    def _clean_specialties(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip() for v in values]
        if any(not v or len(v) > 100 for v in cleaned):
            raise ValueError("each specialty is 1 to 100 characters")
        return list(dict.fromkeys(cleaned))


class MentorProfilePublic(BaseModel):
    id: uuid.UUID
    name: str
    email: str
    timezone: str
    mentor_capacity_weekly: int
    mentor_max_mentees: int
    mentor_specialties: list[str]
    mentor_availability: Availability | dict
    languages: list[str]
    mentor_buffer_minutes: int
    mentor_min_notice_hours: int
    capacity: CapacityPublic
