"""Is a session inside the mentor's weekly availability?

Windows are wall-clock times in the availability's IANA zone. Rather than converting the
session to local wall time (which breaks when a session spans a DST change, where local
end can even come before local start), each window is turned into real instants for the
concrete local dates around the session, with `zoneinfo` choosing the offset valid on that
date. "Monday 09:00-12:00 Europe/London" is therefore 09:00Z in January and 08:00Z in July.

Touching or overlapping windows are merged first, so "09:00-12:00" + "12:00-15:00" (or
Monday "..-24:00" + Tuesday "00:00-..") behave as one window; a session must lie entirely
inside one merged window.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

from pydantic import ValidationError

from app.schemas.sessions import Availability, minutes_of


def parse_availability(raw: dict[str, Any] | None) -> Availability | None:
    """The stored availability, or None when it is missing or malformed (no window)."""
    try:
        return Availability.model_validate(raw or {})
    except ValidationError:
        return None


@functools.lru_cache(maxsize=4096)
def parse_stored_availability(stored: str | None) -> Availability | None:
    """`parse_availability` of the stored column's JSON text, once per distinct text: a
    mentor's windows are read far more often than they change (validating them was a
    tenth of a slot request's CPU). The result is shared: read it, never change it."""
    return parse_availability(json.loads(stored) if stored else None)


def _instant(day, minutes: int, availability: Availability) -> datetime:
    """Local `day` + `minutes` (1440 = the next midnight) in the zone, as a UTC instant.
    Local times skipped by a DST gap resolve with the offset in force before the change
    (PEP 495, fold=0)."""
    day = day + timedelta(days=minutes // 1440)
    local = datetime.combine(day, time(minutes % 1440 // 60, minutes % 60),
                             tzinfo=availability.zone())
    return local.astimezone(UTC)


def window_instants(
    availability: Availability, starts_at: datetime, ends_at: datetime
) -> list[tuple[datetime, datetime]]:
    """The merged availability intervals (UTC) on the local dates around [starts_at, ends_at)."""
    zone = availability.zone()
    first = starts_at.astimezone(zone).date() - timedelta(days=1)
    last = ends_at.astimezone(zone).date() + timedelta(days=1)
    intervals: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        for window in availability.windows:
            if window.weekday == day.weekday():
                intervals.append((_instant(day, minutes_of(window.start), availability),
                                  _instant(day, minutes_of(window.end), availability)))
        day += timedelta(days=1)
    intervals.sort()
    merged: list[tuple[datetime, datetime]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def is_available(availability: Availability | None, starts_at: datetime,
                 ends_at: datetime) -> bool:
    if availability is None or not availability.windows:
        return False
    return any(start <= starts_at and ends_at <= end
               for start, end in window_instants(availability, starts_at, ends_at))
