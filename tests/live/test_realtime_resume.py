"""When a reconnecting client may resume from its Last-Event-ID (pure decisions)."""

from __future__ import annotations

import pytest

from app.core.streams import StreamState, parse_entry_id, parse_sse_id, resume_point

E = "0123456789ab"  # the stream's epoch
OTHER = "ba9876543210"


@pytest.mark.parametrize(("raw", "parsed"), [
    ("1700000000000-3", (1700000000000, 3)),
    (" 5-0 ", (5, 0)),
    ("0-0", (0, 0)),
    (b"7-1", (7, 1)),
    (None, None), ("", None), ("12", None), ("a-1", None), ("1-2-3", None), ("-1-0", None),
    (f"{2**64}-0", None), (f"0-{2**64}", None), ("1" * 30 + "-0", None),
])
def test_parse_entry_id(raw, parsed):
    assert parse_entry_id(raw) == parsed


@pytest.mark.parametrize(("raw", "parsed"), [
    (f"{E}-1700000000000-3", (E, (1700000000000, 3))),
    (f" {E}-0-0 ", (E, (0, 0))),
    # Ids without an epoch (from before epochs existed) or with a malformed one.
    ("1700000000000-3", None), ("0-0", None), (f"{E[:-1]}-1-0", None),
    (f"{E.upper()}-1-0", None), (f"{E}-1", None), (f"{E}-x-0", None),
    (f"{E}-{2**64}-0", None), (f"{E}-0-{2**64}", None), (None, None), ("", None),
])
def test_parse_sse_id(raw, parsed):
    assert parse_sse_id(raw) == parsed


UNTRIMMED = StreamState(epoch=E, exists=True, added=5, length=5, last_generated=(50, 0),
                        first_entry=(10, 0))
TRIMMED = StreamState(epoch=E, exists=True, added=9, length=5, last_generated=(50, 0),
                      first_entry=(30, 0))
EMPTY = StreamState(epoch=E, exists=False)


@pytest.mark.parametrize(("state", "last_seen", "expected"), [
    # No usable id: a snapshot.
    (UNTRIMMED, None, None),
    # Another epoch: the stream the client read is gone (Redis lost it, or it expired).
    (UNTRIMMED, (OTHER, (20, 0)), None),
    (UNTRIMMED, (OTHER, (50, 0)), None),
    (EMPTY, (OTHER, (0, 0)), None),
    # Nothing was ever removed in the epoch: any id of it resumes, even before the first entry.
    (UNTRIMMED, (E, (0, 0)), (0, 0)),
    (UNTRIMMED, (E, (20, 0)), (20, 0)),
    # Trimmed: only ids at or past the first entry kept are safe.
    (TRIMMED, (E, (0, 0)), None),
    (TRIMMED, (E, (10, 0)), None),
    (TRIMMED, (E, (29, 9)), None),
    (TRIMMED, (E, (30, 0)), (30, 0)),
    (TRIMMED, (E, (40, 0)), (40, 0)),
    # The newest id: nothing can be missing, even if everything else was trimmed.
    (StreamState(epoch=E, exists=True, added=9, length=1, last_generated=(50, 0),
                 first_entry=(50, 0)), (E, (50, 0)), (50, 0)),
    (StreamState(epoch=E, exists=True, added=9, length=1, last_generated=(50, 0),
                 first_entry=(50, 0)), (E, (49, 0)), None),
    # Not an id of this stream (ahead of anything it generated).
    (UNTRIMMED, (E, (51, 0)), None),
    # An entry after it was deleted (XDEL; Redis 7 says so, and the count no longer matches).
    (StreamState(epoch=E, exists=True, added=5, length=4, last_generated=(50, 0),
                 first_entry=(10, 0), max_deleted=(40, 0)), (E, (35, 0)), None),
    (StreamState(epoch=E, exists=True, added=5, length=4, last_generated=(50, 0),
                 first_entry=(10, 0), max_deleted=(40, 0)), (E, (45, 0)), (45, 0)),
    # An epoch given to a client of an empty stream: only "nothing seen yet" resumes.
    (EMPTY, (E, (0, 0)), (0, 0)),
    (EMPTY, (E, (10, 0)), None),
])
def test_resume_point(state, last_seen, expected):
    assert resume_point(state, last_seen) == expected
