"""Inbound events (POST /api/v1/events), user provisioning (PUT /api/v1/users/{id}) and
webhook endpoint shapes.

Every inbound event shares the envelope `{"id", "type", "occurred_at", "source", "data"}`;
`type` picks the `data` schema through a pydantic discriminated union, so an unknown type or
a bad payload is a 422 whose `loc` names the failing item: `["body", "events", <index>, ...]`
(a single event is validated as a batch of one, index 0).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

from app.core.outbox import REFRESH_PRIORITY
from app.core.text import safe_text
from app.models.user import Role
from app.schemas.common import UserProfile
from app.schemas.limits import Languages, MentorCapacityWeekly, MentorMaxMentees
from app.schemas.sessions import Availability
from app.schemas.types import (
    BoundedDatetime,
    Label,
    Name,
    OutputText,
    ShortText,
    Tag,
    TimeZoneName,
)

MAX_BATCH = 500  # the documented limit; settings.events_max_batch may only lower it

def _plausible(value: datetime) -> datetime:
    if not 1970 <= value.year < 2200:
        raise ValueError("timestamp out of range (1970-2199)")
    return value


# Inbound events' instants: plausible for a programme, stricter than the API's bound.
Timestamp = Annotated[BoundedDatetime, AfterValidator(_plausible)]




# --- users --------------------------------------------------------------------------------

class UserUpsert(BaseModel):
    """A user as the platform's identity service knows them. On update only the fields sent
    change (plus `is_mentor`, derived from `role` unless given), so a provisioning call that
    does not know the mentor's own settings (availability, capacity) never wipes them."""

    model_config = ConfigDict(extra="ignore")

    email: EmailStr
    name: Name
    role: Role
    timezone: TimeZoneName = "UTC"
    tier: safe_text(32) | None = None
    interests: list[Tag] = Field(default_factory=list, max_length=100)
    is_mentor: bool | None = Field(None, description="Default: role == 'mentor'")
    mentor_capacity_weekly: MentorCapacityWeekly | None = None
    mentor_max_mentees: MentorMaxMentees | None = None
    mentor_specialties: list[Tag] | None = Field(None, max_length=100)
    mentor_availability: Availability | None = None
    languages: Languages | None = Field(None, description="Languages the user speaks.")
    active: bool | None = Field(
        None, description="false deactivates the user (their active assignments end, their "
                          "future sessions are cancelled, their tokens stop working); true "
                          "brings them back without relationships. Not sent: unchanged "
                          "(a new user is active).")


class UserUpsertData(UserUpsert):
    """`user.upserted` data: the user fields and the user's `id`."""

    id: uuid.UUID


class UserPublic(UserProfile):
    is_mentor: bool
    mentor_capacity_weekly: int
    mentor_max_mentees: int
    mentor_specialties: list[OutputText]
    mentor_availability: dict[OutputText, Any]
    languages: list[OutputText]
    active: bool
    deactivated_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


# --- inbound event payloads ----------------------------------------------------------------

class MissionSubmittedData(BaseModel):
    submission_id: uuid.UUID
    mentee_id: uuid.UUID
    mission_id: uuid.UUID
    title: ShortText
    submitted_at: Timestamp
    url: HttpUrl | None = None


class HabitStreakBrokenData(BaseModel):
    mentee_id: uuid.UUID
    habit: ShortText
    streak_days: int = Field(ge=0, le=100_000)


class GoalOverdueData(BaseModel):
    mentee_id: uuid.UUID
    goal_id: uuid.UUID
    title: ShortText
    due_at: Timestamp


class ReadinessUpdatedData(BaseModel):
    mentee_id: uuid.UUID
    score: float = Field(ge=0, le=100, allow_inf_nan=False)
    previous_score: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)


class _Envelope(BaseModel):
    id: uuid.UUID = Field(description="Event id: the idempotency key")
    occurred_at: Timestamp
    source: safe_text(128) | None = None


class UserUpserted(_Envelope):
    type: Literal["user.upserted"]
    data: UserUpsertData


class MissionSubmitted(_Envelope):
    type: Literal["mission.submitted"]
    data: MissionSubmittedData


class HabitStreakBroken(_Envelope):
    type: Literal["habit.streak_broken"]
    data: HabitStreakBrokenData


class GoalOverdue(_Envelope):
    type: Literal["goal.overdue"]
    data: GoalOverdueData


class ReadinessUpdated(_Envelope):
    type: Literal["readiness.updated"]
    data: ReadinessUpdatedData


InboundEvent = Annotated[
    UserUpserted | MissionSubmitted | HabitStreakBroken | GoalOverdue | ReadinessUpdated,
    Field(discriminator="type"),
]


def _one_or_many_schema(schema: dict[str, Any]) -> None:
    """OpenAPI: the body is one event or `{"events": [...]}`."""
    batch = {key: schema.pop(key) for key in ("type", "properties", "required") if key in schema}
    schema["anyOf"] = [batch["properties"]["events"]["items"], batch]


class EventsIn(BaseModel):
    """One inbound event, or `{"events": [...]}` with up to 500 of them."""

    model_config = ConfigDict(json_schema_extra=_one_or_many_schema)

    events: list[InboundEvent] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="before")
    @classmethod
    def _single_event(cls, value: Any) -> Any:
        # A bare event is a batch of one, so errors always carry an item index.
        if isinstance(value, dict) and "events" not in value:
            return {"events": [value]}
        return value


class EventsAccepted(BaseModel):
    accepted: int = Field(description="Events applied now")
    duplicates: int = Field(description="Events seen before (or twice in the batch): no effect")
    duplicate_ids: list[uuid.UUID] = []


# --- webhooks ------------------------------------------------------------------------------

OUTBOUND_TYPES = tuple(REFRESH_PRIORITY)
_TYPE_FILTER = re.compile(r"^[a-z_]+\.(?:\*|[a-z_]+)$")


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl = Field(description="http(s) only, without credentials")
    event_types: list[Label] = Field(
        default_factory=list, max_length=50,
        description="Outbound event types to deliver (`session.*` for a family); empty = all",
    )
    description: safe_text(500) | None = None

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: HttpUrl) -> HttpUrl:
        if url.username or url.password:
            raise ValueError("URLs with credentials are refused; the signature authenticates")
        return url

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        for value in types:
            if not _TYPE_FILTER.match(value) or not any(
                matches_filter(t, [value]) for t in OUTBOUND_TYPES
            ):
                raise ValueError(f"{value!r} matches no outbound event type")
        return list(dict.fromkeys(types))


def matches_filter(event_type: str, filters: list[str]) -> bool:
    """An endpoint's filter: empty = every type; `family.*` = every type of that family."""
    if not filters:
        return True
    family = event_type.split(".", 1)[0]
    return any(f == event_type or f == f"{family}.*" for f in filters)


class WebhookPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: OutputText
    event_types: list[OutputText]
    description: OutputText | None
    active: bool
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: OutputText = Field(description="`whsec_...`: shown once, store it now")


class WebhookAttemptPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    attempted_at: datetime
    status_code: int | None
    error: OutputText | None
    duration_ms: int


class WebhookDeliveryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: OutputText
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: OutputText | None
    created_at: datetime
    delivered_at: datetime | None
    attempt_log: list[WebhookAttemptPublic] = []


# --- outbound ---------------------------------------------------------------------------

class OutboundEvent(BaseModel):
    """An outbound event as it goes out: the SSE `data:` of a stream event and the body of a
    webhook delivery (signed the Standard Webhooks way). `type` names the event; `data` holds
    its ids and fields (see the event catalogue, `/asyncapi.json`)."""

    id: uuid.UUID = Field(description="Event id; also the `webhook-id` header. Delivery is at "
                                      "least once: deduplicate on it")
    type: OutputText = Field(examples=["session.scheduled"])
    occurred_at: datetime
    source: Literal["mentorship"] = "mentorship"
    refresh_priority: Literal["urgent", "high", "normal"] = Field(
        description="How fast consumers should refresh what the event touches")
    data: dict[OutputText, Any]
