"""Shapes shared by every route: problem details, cursor pages (cursors: app/core/pagination)."""

from __future__ import annotations

import uuid
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import OutputText

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

    type: OutputText
    title: OutputText
    status: int
    detail: OutputText
    code: OutputText
    instance: OutputText | None = None
    errors: list[dict[OutputText, Any]] | None = None


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the problem statuses a route can return."""
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in statuses
    }


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: OutputText | None = Field(None, description="Opaque; pass as `?cursor=` for more.")


class UserProfile(BaseModel):
    """The profile fields every view of a user shares."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: OutputText
    name: OutputText
    role: OutputText
    timezone: OutputText
    tier: OutputText | None
    interests: list[OutputText]
