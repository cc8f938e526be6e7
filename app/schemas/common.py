"""Shapes shared by every route: problem details, cursor pages."""

from __future__ import annotations

import base64
import json
import uuid
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


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the problem statuses a route can return."""
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in statuses
    }


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
