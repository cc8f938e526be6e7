"""When a reconnecting client may resume from its Last-Event-ID (pure decisions)."""

from __future__ import annotations

import pytest

from app.services.live.streams import StreamState, parse_stream_id, resume_point


@pytest.mark.parametrize(("raw", "parsed"), [
    ("1700000000000-3", (1700000000000, 3)),
    (" 5-0 ", (5, 0)),
    ("0-0", (0, 0)),
    (None, None), ("", None), ("12", None), ("a-1", None), ("1-2-3", None), ("-1-0", None),
    (f"{2**64}-0", None), (f"0-{2**64}", None), ("1" * 30 + "-0", None),
])
def test_parse_stream_id(raw, parsed):
    assert parse_stream_id(raw) == parsed


REDIS7_UNTRIMMED = StreamState(exists=True, last_generated=(50, 0), length=5,
                               first_entry=(10, 0), entries_added=5, max_deleted=(0, 0))
REDIS7_TRIMMED = StreamState(exists=True, last_generated=(50, 0), length=5,
                             first_entry=(30, 0), entries_added=9, max_deleted=(0, 0))
REDIS6_TRIMMED = StreamState(exists=True, last_generated=(50, 0), length=5,
                             first_entry=(30, 0))


@pytest.mark.parametrize(("state", "last_seen", "expected"), [
    # No usable id: a snapshot.
    (REDIS7_UNTRIMMED, None, None),
    # Nothing was ever removed: any id of this stream resumes, even before the first entry.
    (REDIS7_UNTRIMMED, (0, 0), (0, 0)),
    (REDIS7_UNTRIMMED, (20, 0), (20, 0)),
    # Trimmed: only ids at or past the first entry kept are safe.
    (REDIS7_TRIMMED, (10, 0), None),
    (REDIS7_TRIMMED, (29, 9), None),
    (REDIS7_TRIMMED, (30, 0), (30, 0)),
    (REDIS7_TRIMMED, (40, 0), (40, 0)),
    (REDIS6_TRIMMED, (10, 0), None),
    (REDIS6_TRIMMED, (30, 0), (30, 0)),
    # The newest id: nothing can be missing, even if everything was trimmed.
    (StreamState(exists=True, last_generated=(50, 0), length=0, entries_added=9,
                 max_deleted=(0, 0)), (50, 0), (50, 0)),
    (StreamState(exists=True, last_generated=(50, 0), length=0, entries_added=9,
                 max_deleted=(0, 0)), (49, 0), None),
    # Not an id of this stream (ahead of anything it generated).
    (REDIS7_UNTRIMMED, (51, 0), None),
    # An entry after it was deleted (XDEL).
    (StreamState(exists=True, last_generated=(50, 0), length=4, first_entry=(10, 0),
                 entries_added=5, max_deleted=(40, 0)), (35, 0), None),
    (StreamState(exists=True, last_generated=(50, 0), length=4, first_entry=(10, 0),
                 entries_added=5, max_deleted=(40, 0)), (45, 0), (45, 0)),
    # No stream (never written, or Redis lost it): only "nothing seen yet" resumes.
    (StreamState(exists=False), (0, 0), (0, 0)),
    (StreamState(exists=False), (10, 0), None),
])
def test_resume_point(state, last_seen, expected):
    assert resume_point(state, last_seen) == expected
