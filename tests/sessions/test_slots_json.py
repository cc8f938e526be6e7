"""The slots route writes its body directly (app/routers/sessions/scheduling.py
`slots_json`): byte for byte what pydantic writes for the `SlotsPublic` model."""

from __future__ import annotations

import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from app.routers.sessions.scheduling import slots_json
from app.schemas.scheduling import SlotsPublic
from app.services.sessions.slots import MentorRules, from_us

MINUTE = 60_000_000
# 2000-01-01 to 2100-01-01 in microseconds since the epoch.
LOW, HIGH = 946_684_800_000_000, 4_102_444_800_000_000


def _rules(zone: str) -> MentorRules:
    return MentorRules(uuid.uuid4(), "M", ZoneInfo(zone), None, 10, timedelta(0),
                       timedelta(0))


def _pydantic(zone: str, starts: list[int], duration: int, step: int) -> str:
    return SlotsPublic.model_validate({
        "slots": [{"starts_at": from_us(s), "ends_at": from_us(s) + timedelta(minutes=duration)}
                  for s in starts],
        "timezone": zone, "duration_minutes": duration, "step_minutes": step,
    }).model_dump_json()


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(["UTC", "Europe/London", "Asia/Kathmandu"]),
       minutes=st.lists(st.integers(LOW // MINUTE, HIGH // MINUTE), max_size=60),
       odd=st.lists(st.integers(LOW, HIGH), max_size=2),
       duration=st.sampled_from([15, 30, 60, 240]), step=st.sampled_from([5, 15, 60]))
def test_slots_json_is_what_pydantic_writes(zone, minutes, odd, duration, step):
    whole = sorted(set(m * MINUTE for m in minutes))
    for starts in (whole, sorted(set(whole + odd))):  # whole minutes, and any instant
        assert slots_json(_rules(zone), starts, duration=duration, step=step) == _pydantic(
            zone, starts, duration, step)
