"""The one text type for anything a client sends: no NUL, no unpaired surrogates, bounded.

PostgreSQL `text` and `jsonb` cannot hold NUL, and a lone surrogate (`"\\ud800"` is valid
JSON) cannot be encoded for the wire: either would fail the statement after validation, a
500 instead of the 422 it is. `safe_text()` refuses both while validating, so every text
field and string parameter built from it is safe to bind. `OutputText` is for response
models only: text read back from the database, which cannot hold either, so there is nothing
to re-check (tests/core/test_text_types.py keeps it out of request models).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints


def check_text(value: str) -> str:
    """`value` unchanged, or ValueError if PostgreSQL or UTF-8 could not take it."""
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("unpaired surrogates are not allowed") from None
    return value


# Markers the schema walk (tests/core/test_text_types.py) looks for in a field's metadata.
SAFE_TEXT = AfterValidator(check_text)


class _Output:
    """Marks text that only goes out (response models); see the module docstring."""

    def __repr__(self) -> str:
        return "OUTPUT_TEXT"


OUTPUT_TEXT = _Output()


def safe_text(max_length: int, *, min_length: int = 0, pattern: str | None = None,
              strip: bool = False) -> Any:
    """A `str` type for request fields and parameters, with its length limits."""
    return Annotated[
        str,
        StringConstraints(min_length=min_length or None, max_length=max_length,
                          pattern=pattern, strip_whitespace=strip or None),
        SAFE_TEXT,
    ]


OutputText = Annotated[str, OUTPUT_TEXT]
