"""API shapes for sessions, feedback, the calendar and the mentor's profile."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Literal, Self
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from app.schemas.limits import Languages, MentorCapacityWeekly, MentorMaxMentees
from app.schemas.types import (
    HHMM,
    BoundedDatetime,
    Note,
    OutputText,
    Reason,
    SessionNotes,
    Tag,
    TimeZoneName,
)

SessionStatus = Literal["scheduled", "completed", "no_show", "cancelled"]
DURATION = "Whole minutes, 15 to 240."

_START = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$")  # 00:00 .. 23:59
_END = re.compile(r"^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$")  # 00:00 .. 24:00


def minutes_of(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


# --- sessions ---------------------------------------------------------------------------------

class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mentee_id: uuid.UUID
    starts_at: BoundedDatetime = Field(description="RFC 3339 with an offset; in the future.")
    duration_minutes: int = Field(ge=15, le=240, description=DURATION)
    agenda: Note | None = None


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

    starts_at: BoundedDatetime | None = None
    duration_minutes: int | None = Field(None, ge=15, le=240, description=DURATION)
    status: SessionStatus | None = None
    reason: Reason | None = None
    mentor_notes: SessionNotes | None = None

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
    meeting_url: OutputText | None
    agenda: OutputText | None
    cancel_reason: OutputText | None
    sequence: int = Field(description="Raised on every reschedule or cancellation "
                                      "(the calendar event's SEQUENCE).")
    created_at: datetime
    updated_at: datetime


class MenteeSessionCreate(BaseModel):
    """A mentee books with their current mentor."""

    model_config = ConfigDict(extra="forbid")

    starts_at: BoundedDatetime = Field(description="RFC 3339 with an offset; in the future, "
                                                 "after the mentor's minimum notice.")
    duration_minutes: int = Field(ge=15, le=240, description=DURATION)
    agenda: Note | None = None


class MenteeSessionUpdate(BaseModel):
    """Reschedule (`starts_at` and/or `duration_minutes`) or cancel (`status: cancelled`,
    optional `reason`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"starts_at": "2027-03-01T09:00:00+00:00"},
        {"status": "cancelled", "reason": "Exam that day"},
    ]})

    starts_at: BoundedDatetime | None = None
    duration_minutes: int | None = Field(None, ge=15, le=240, description=DURATION)
    status: Literal["cancelled"] | None = None
    reason: Reason | None = None

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
    mentor_notes: OutputText | None


class MenteeSessionPublic(SessionPublic):
    feedback_given: bool = False


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)
    comment: Note | None = None


class FeedbackPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    session_id: uuid.UUID
    mentor_id: uuid.UUID
    mentee_id: uuid.UUID
    rating: int
    comment: OutputText | None
    created_at: datetime


# --- mentor profile ---------------------------------------------------------------------------

class AvailabilityWindow(BaseModel):
    """A weekly window, in local time of the availability's time zone."""

    model_config = ConfigDict(extra="forbid")

    weekday: int = Field(ge=0, le=6, description="0 = Monday ... 6 = Sunday")
    start: HHMM = Field(description='"HH:MM", 00:00 to 23:59', examples=["09:00"])
    end: HHMM = Field(description='"HH:MM", after start; "24:00" is midnight at the end of '
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

    timezone: TimeZoneName = Field(description="IANA time zone name")
    windows: list[AvailabilityWindow] = Field(default_factory=list, max_length=100)

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class CapacityPublic(BaseModel):
    iso_week: OutputText = Field(
        description="The ISO week in the mentor's time zone, e.g. 2027-W09")
    weekly_slots_used: int
    weekly_slots_total: int
    weekly_slots: OutputText = Field(examples=["7/10 weekly slots"])
    mentees_active: int
    mentees_max: int
    utilization: float = Field(description="weekly_slots_used / weekly_slots_total")


class MentorProfileUpdate(BaseModel):
    """The editable profile. Every field sent replaces its value; a field left out keeps
    its value (as `PUT /api/v1/users/{id}` does), so a client may send the whole profile or
    only what it changes (`{"mentor_buffer_minutes": 15}`). An explicit `null` is 422, and
    so is a body naming no field."""

    # The defaults are not validated, so a left-out field is None while `null` sent for a
    # field is still a validation error.
    model_config = ConfigDict(extra="forbid", validate_default=False)

    mentor_capacity_weekly: MentorCapacityWeekly = None
    mentor_max_mentees: MentorMaxMentees = None
    mentor_specialties: list[Tag] = Field(None, max_length=50)
    mentor_availability: Availability = None
    languages: Languages = Field(None, description="Languages the mentor speaks.")
    mentor_buffer_minutes: int = Field(
        None, ge=0, le=120, description="Minutes kept free before and after each live "
        "session (booking routes of both people).")
    mentor_min_notice_hours: int = Field(
        None, ge=0, le=336, description="How soon a mentee may book a new session (you "
        "may book your own at shorter notice).")

    @model_validator(mode="after")
    def _names_a_field(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("name at least one field to change")
        return self

    def changed(self) -> dict[str, object]:
        """The fields sent, as the columns they set (the availability as its JSON)."""
        return self.model_dump(include=self.model_fields_set)

    @field_validator("mentor_specialties")
    @classmethod
    def _clean_specialties(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip() for v in values]
        if any(not v or len(v) > 100 for v in cleaned):
            raise ValueError("each specialty is 1 to 100 characters")
        return list(dict.fromkeys(cleaned))


class MentorProfilePublic(BaseModel):
    id: uuid.UUID
    name: OutputText
    email: OutputText
    timezone: OutputText
    mentor_capacity_weekly: int
    mentor_max_mentees: int
    mentor_specialties: list[OutputText]
    mentor_availability: Availability | dict
    languages: list[OutputText]
    mentor_buffer_minutes: int
    mentor_min_notice_hours: int
    capacity: CapacityPublic
