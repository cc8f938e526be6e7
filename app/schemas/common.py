"""Shapes shared by every route: problem details, cursor pages."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import Unprocessable

T = TypeVar("T")


class Problem(BaseModel):
    """RFC 9457 problem details. `code` is stable and meant for machines."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "type": "https://errors.mentorship.dev/double_booking",
                "title": "The mentor or the mentee is already booked at that time",
                "status": 409,
                "detail": "The mentor or the mentee is already booked at that time",
                "code": "double_booking",
            }
        }
    )

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Opaque; pass as `?cursor=` for more.")


def encode_cursor(values: dict[str, Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable("The cursor is not one this service issued",
                            code="invalid_cursor") from exc
    if not isinstance(value, dict):
        raise Unprocessable("The cursor is not one this service issued", code="invalid_cursor")
    return value


def decode_time_id_cursor(cursor: str | None, time_key: str,
                          id_key: str = "i") -> tuple[datetime, uuid.UUID] | None:
    """A keyset position `(aware timestamp, id)` from a cursor (`None` or empty: the first
    page). Anything else than what `encode_cursor` wrote is 422 `invalid_cursor`, never a
    500 (a naive timestamp could not be compared with the database's)."""
    position = decode_cursor(cursor or None)
    if position is None:
        return None
    try:
        at, row_id = datetime.fromisoformat(position[time_key]), uuid.UUID(position[id_key])
    except (KeyError, TypeError, ValueError) as exc:
        raise Unprocessable("The cursor is not one this service issued",
                            code="invalid_cursor") from exc
    if at.tzinfo is None:
        raise Unprocessable("The cursor is not one this service issued", code="invalid_cursor")
    return at, row_id


class UserProfile(BaseModel):
    """The profile fields every view of a user shares."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: str
    timezone: str
    tier: str | None
    interests: list[str]
