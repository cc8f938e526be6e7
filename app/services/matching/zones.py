"""UTC offsets as the matcher compares them, the same in a run and at publish time.

The gap between two people is the largest over the year: offsets are taken on 15 January
and 15 July (noon UTC) of the year in question, so each side's daylight saving time, north
or south, is counted. A mentee's `max_timezone_offset_hours` is therefore a limit that
holds all year, not only on the day of the run (a relationship lasts months)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def seasons(at: datetime) -> tuple[datetime, datetime]:
    return (datetime(at.year, 1, 15, 12, tzinfo=UTC), datetime(at.year, 7, 15, 12, tzinfo=UTC))


@lru_cache(maxsize=1024)
def _offsets(zone: str | None, year: int) -> tuple[float, float]:
    try:
        info = ZoneInfo(zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):  # an unknown zone name: treat as UTC
        return 0.0, 0.0
    january, july = seasons(datetime(year, 6, 1, tzinfo=UTC))
    return _hours(info, january), _hours(info, july)


def _hours(info: ZoneInfo, day: datetime) -> float:
    offset = info.utcoffset(day)
    return offset.total_seconds() / 3600 if offset is not None else 0.0


def offsets(zone: str | None, at: datetime) -> tuple[float, float]:
    """(January offset, July offset) of `zone` in hours, for the year of `at`."""
    return _offsets(zone, at.year)


def gap_hours(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The largest of the two seasons' gaps on the 24 h circle (0..12)."""
    def circular(x: float, y: float) -> float:
        diff = abs(x - y) % 24.0
        return min(diff, 24.0 - diff)
    return max(circular(a[0], b[0]), circular(a[1], b[1]))
