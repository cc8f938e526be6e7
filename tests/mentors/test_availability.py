"""Availability windows read in the mentor's zone with zoneinfo, correct across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.schemas.sessions import Availability
from app.services.mentors.availability import is_available, parse_availability
from tests.support.session_helpers import book, dst_changes

LONDON = ZoneInfo("Europe/London")


def at(day: date, hh: int, mm: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=zone)


def availability(zone: str, *windows: tuple[int, str, str]) -> Availability:
    return Availability(timezone=zone, windows=[
        {"weekday": d, "start": s, "end": e} for d, s, e in windows])


class TestIsAvailable:
    # London changes on the last Sundays of March and October (2027: 28 March, 31 October).
    SPRING, AUTUMN = date(2027, 3, 28), date(2027, 10, 31)

    @pytest.mark.parametrize("monday", [SPRING - timedelta(days=6), SPRING + timedelta(days=1),
                                        AUTUMN - timedelta(days=6), AUTUMN + timedelta(days=1)])
    def test_nine_local_on_both_sides_of_a_change(self, monday):
        window = availability("Europe/London", (0, "09:00", "10:00"))
        starts = at(monday, 9, 0, LONDON)
        assert is_available(window, starts, starts + timedelta(hours=1))
        # The same UTC clock time is not 09:00 local in summer.
        naive_utc = datetime.combine(monday, time(9), tzinfo=UTC)
        if starts != naive_utc:
            assert not is_available(window, naive_utc, naive_utc + timedelta(hours=1))

    def test_offsets_really_differ_across_the_change(self):
        before = at(self.SPRING - timedelta(days=6), 9, 0, LONDON).astimezone(UTC)
        after = at(self.SPRING + timedelta(days=1), 9, 0, LONDON).astimezone(UTC)
        assert (before.hour, after.hour) == (9, 8)

    def test_session_across_the_spring_gap(self):
        window = availability("Europe/London", (6, "00:00", "04:00"))  # Sunday
        starts = datetime.combine(self.SPRING, time(0, 30), tzinfo=UTC)  # 00:30 GMT
        # 90 minutes later it is 03:00 BST: inside; 3 h later 04:30 BST: outside.
        assert is_available(window, starts, starts + timedelta(minutes=90))
        assert not is_available(window, starts, starts + timedelta(hours=3))

    def test_session_across_the_autumn_repeat(self):
        window = availability("Europe/London", (6, "00:00", "03:00"))
        # Local 00:00 BST is 23:00Z Saturday, local 03:00 GMT is 03:00Z: four real hours.
        starts = datetime.combine(self.AUTUMN - timedelta(days=1), time(23, 0), tzinfo=UTC)
        assert is_available(window, starts, starts + timedelta(hours=4))
        assert not is_available(window, starts, starts + timedelta(hours=4, minutes=15))

    def test_touching_windows_merge_also_across_midnight(self):
        window = availability("UTC", (0, "09:00", "12:00"), (0, "12:00", "15:00"),
                              (0, "22:00", "24:00"), (1, "00:00", "02:00"))
        monday = at(date(2027, 3, 1), 11, 30, UTC)
        assert is_available(window, monday, monday + timedelta(hours=1))
        late = at(date(2027, 3, 1), 23, 30, UTC)
        assert is_available(window, late, late + timedelta(hours=1))
        assert not is_available(window, late, late + timedelta(hours=3))

    def test_a_gap_between_windows_is_not_available(self):
        window = availability("UTC", (0, "09:00", "10:00"), (0, "10:30", "12:00"))
        starts = at(date(2027, 3, 1), 9, 30, UTC)
        assert not is_available(window, starts, starts + timedelta(minutes=75))
        assert is_available(window, starts, starts + timedelta(minutes=30))

    @pytest.mark.parametrize("raw", [None, {}, {"timezone": "Mars/Base"},
                                     {"timezone": "UTC", "windows": []},
                                     {"timezone": "UTC", "windows": [
                                         {"weekday": 9, "start": "09:00", "end": "10:00"}]}])
    def test_missing_or_malformed_availability_means_no_window(self, raw):
        starts = at(date(2027, 3, 1), 9, 0, UTC)
        assert not is_available(parse_availability(raw), starts, starts + timedelta(hours=1))


@pytest.mark.parametrize("zone_name", ["Europe/London", "America/New_York"])
async def test_booking_at_nine_local_across_both_dst_changes(client, factory, zone_name):
    """A Monday 09:00-10:00 window accepts 09:00 local on the Mondays before and after each
    of the zone's next two DST changes (spring and autumn), and refuses 09:00 at the
    other season's offset."""
    zone = ZoneInfo(zone_name)
    mentor, (mentee,) = await factory.mentor_with_mentees(1, mentor_availability={
        "timezone": zone_name, "windows": [{"weekday": 0, "start": "09:00", "end": "10:00"}]})
    headers = factory.headers(mentor)
    changes = dst_changes(zone, 2)
    assert {d.month for d in changes} in ({3, 10}, {3, 11})
    for change in changes:  # a Sunday in both zones
        before = change - timedelta(days=change.weekday() or 7)  # the Monday before
        after = change + timedelta(days=(7 - change.weekday()) % 7 or 7)  # and after
        sides = [at(before, 9, 0, zone), at(after, 9, 0, zone)]
        assert sides[0].utcoffset() != sides[1].utcoffset()
        for starts in sides:
            response = await book(client, headers, mentee, starts.astimezone(UTC), 60)
            assert response.status_code == 201, (zone_name, starts, response.text)
            assert datetime.fromisoformat(response.json()["starts_at"]) == starts
        # 09:00 at the offset of the other side of the change is 08:00 or 10:00 here.
        for starts, other in ((sides[0], sides[1]), (sides[1], sides[0])):
            wrong = datetime.combine(starts.date(), time(9), tzinfo=UTC) - other.utcoffset()
            response = await book(client, headers, mentee, wrong, 60)
            assert response.status_code == 409, (zone_name, wrong, response.text)
            assert response.json()["code"] == "outside_availability"
