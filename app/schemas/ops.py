"""Programme metrics as the director API serves them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.text import OutputText


class GoalPublic(BaseModel):
    lt: float | None = Field(None, description="Met when the value is below this.")
    gt: float | None = Field(None, description="Met when the value is above this.")
    min: float | None = Field(None, description="Lower bound of the goal range (inclusive).")
    max: float | None = Field(None, description="Upper bound of the goal range (inclusive).")
    text: OutputText = Field(description='The goal as people write it: "< 24", "0.6-0.8".')


class ProgrammeMetricPublic(BaseModel):
    name: OutputText
    value: float | None = Field(description="None until computed, or when there is no data.")
    unit: OutputText
    description: OutputText
    goal: GoalPublic
    met: bool | None = Field(description="Whether the value meets the goal; None without a value.")
    computed_at: datetime | None
    details: dict[OutputText, Any] = Field(description="The counts behind the value.")


class ProgrammeMetricsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {
        "computed_at": "2026-11-02T09:31:00Z",
        "metrics": [{
            "name": "session_attendance_rate", "value": 0.91, "unit": "ratio",
            "description": "completed / (completed + no_show) over sessions that started in "
                           "the last 30 days (scheduled and cancelled sessions do not count).",
            "goal": {"lt": None, "gt": 0.85, "min": None, "max": None, "text": "> 0.85"},
            "met": True, "computed_at": "2026-11-02T09:31:00Z",
            "details": {"window_days": 30, "completed": 91, "no_show": 9},
        }],
    }})

    metrics: list[ProgrammeMetricPublic]
    computed_at: datetime | None = Field(
        description="When the refresh job last computed them (every minute); None if never.")


class MetricDayPublic(BaseModel):
    day: date = Field(description="A UTC day")
    name: OutputText
    value: float | None = Field(description="The day's last computed value; null when nothing "
                                            "was computed that day or there was no data")
    computed_at: datetime | None


class MetricsHistoryPublic(BaseModel):
    items: list[MetricDayPublic] = Field(description="One row per day and metric, by day")
