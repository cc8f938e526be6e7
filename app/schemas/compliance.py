"""Compliance shapes: the audit trail and a user's data export."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.core.text import OutputText


class AuditEntryPublic(BaseModel):
    id: int
    actor_id: uuid.UUID | None = Field(description="The user whose token made the change; "
                                                   "null for the system (workers, migrations)")
    actor_role: OutputText = Field(
        description="The role of the transaction: a token role or `system`")
    action: OutputText = Field(examples=["sessions.update"],
                        description="What happened: `<table>.<insert|update|delete>` unless "
                                    "the code names the action")
    target_type: OutputText = Field(examples=["sessions"], description="The table changed")
    target_id: OutputText | None
    changes: dict[OutputText, Any] = Field(
        description='The changed fields: `{"field": {"before": ..., "after": ...}}` (secrets '
                    "never; `[erased]` where an erased user's personal value stood)")
    request_id: OutputText | None = Field(description="The X-Request-ID of the API call, if any")
    at: datetime


class UserExport(BaseModel):
    """Every personal datum the service holds about one user (GDPR art. 15 / FERPA)."""

    user_id: uuid.UUID
    generated_at: datetime
    data: dict[OutputText, list[dict[OutputText, Any]]] = Field(
        description="Rows by table (`users`, `assignments`, `sessions`, `session_feedback`, "
                    "`mission_submissions`, `mission_reviews`, `flags`, `work_items`, "
                    "`readiness_history`, `mentee_signals`, `mentee_preferences`, "
                    "`matching_proposals`, `waiting_mentees`, `mentor_time_off`, "
                    "`capacity_alerts`, `calendar_feed_tokens` (without the token's hash), "
                    "`audit_log`), as stored")


class UserErased(BaseModel):
    user_id: uuid.UUID
    erased_at: datetime
