"""The mentor fields' limits and the language tags, for every writer: the mentor's profile
(PUT /api/v1/mentor/profile), provisioning (PUT /api/v1/users/{id}, `user.upserted`) and the
admin UI (app/admin, the same numbers as form validators). The numbers live once, in
app/models/user.py, where the database's check constraints are declared."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from app.core.text import safe_text
from app.models.user import MENTOR_CAPACITY_WEEKLY_MAX, MENTOR_MAX_MENTEES_MAX

MentorCapacityWeekly = Annotated[int, Field(
    ge=0, le=MENTOR_CAPACITY_WEEKLY_MAX,
    description=f"Sessions a week, 0 to {MENTOR_CAPACITY_WEEKLY_MAX}.")]
MentorMaxMentees = Annotated[int, Field(
    ge=0, le=MENTOR_MAX_MENTEES_MAX,
    description=f"Active mentees at once, 0 to {MENTOR_MAX_MENTEES_MAX}.")]

_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")


def _language(value: str) -> str:
    tag = value.strip().lower().replace("_", "-")
    if not _LANGUAGE.match(tag):
        raise ValueError("expected a BCP 47 language tag such as 'en' or 'pt-BR'")
    return tag


LanguageTag = Annotated[safe_text(35, min_length=2), Field(examples=["en", "pt-BR"]),
                        AfterValidator(_language)]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Languages = Annotated[list[LanguageTag], Field(
    max_length=20,
    description="BCP 47 language tags, stored lower-case (`en`, `pt-br`); two tags match "
    "when their primary language is the same (`en-gb` and `en`)."), AfterValidator(_unique)]
