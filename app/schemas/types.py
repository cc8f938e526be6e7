"""The text types of the API, by purpose, all built on `app.core.text.safe_text` (no NUL, no
unpaired surrogates, a length limit). Request models and string parameters use these;
response models use `OutputText` (text read back from the database).
tests/core/test_text_types.py fails on a bare `str` in any model of app.schemas."""

from __future__ import annotations

import zoneinfo
from typing import Annotated

from pydantic import AfterValidator, Field

from app.core.instants import BoundedDatetime
from app.core.text import OutputText, safe_text

__all__ = [
    "BoundedDatetime", "HHMM", "Identifier", "Label", "LongText", "Name", "Note", "OutputText",
    "Reason", "SessionNotes", "ShortText", "Tag", "TimeZoneName", "Title", "UrlText",
]

Name = safe_text(200, min_length=1)  # a person's name
Label = safe_text(64, min_length=1)  # a short category, e.g. a flag's
Tag = safe_text(100, min_length=1)  # interests, specialties, skills
ShortText = safe_text(500, min_length=1)  # titles, habits, end reasons
Title = ShortText
Reason = safe_text(2000)  # why a session or time off was cancelled
Note = safe_text(4000)  # notes, agendas, comments, resolutions
SessionNotes = safe_text(10_000)  # a mentor's notes on a session
LongText = safe_text(20_000)  # review feedback
UrlText = safe_text(2048)
Identifier = safe_text(200, min_length=1)  # an opaque id or token from a URL
HHMM = safe_text(5)  # "09:30", checked further by the model


def _check_zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
    return name


TimeZoneName = Annotated[safe_text(64, min_length=1), Field(examples=["Europe/London"]),
                         AfterValidator(_check_zone)]
