"""Why a mentee has their mentor: one format for every writer of `assignments.reasons`
(the matcher and its dry-run proposals, a director's manual assignment, the demo seed).

Each reason is `<term>: <detail>`: a stable term first (what a program can group by), then
a detail a person can read. The terms are the fit's (see the README, "Matching"):

    specialty: data, python           shared topics (interests and preferred specialties)
    timezone: 2 h apart               the largest UTC offset gap over the year
    load: 3 of 20 mentees             the mentor's mentees when matched, of their maximum
    language: en                      shared languages (only when the mentee named some)
    language: no shared language      ... or none shared; `language: not listed by mentor`
    preference: preferred mentor      the mentee asked for this mentor
    preference: python                preferred specialties the mentor covers
    manual: assigned by a director    a director's choice, not the matcher's
"""

from __future__ import annotations

from collections.abc import Iterable

MANUAL = "manual: assigned by a director"


def reason(term: str, detail: str) -> str:
    return f"{term}: {detail}"


def specialty(tags: Iterable[str]) -> str:
    return reason("specialty", ", ".join(sorted(tags)))


def timezone(gap_hours: float) -> str:
    return reason("timezone", f"{gap_hours:g} h apart")


def load(active: int, maximum: int) -> str:
    return reason("load", f"{active} of {maximum} mentees")


def language(shared: Iterable[str], *, mentor_lists_none: bool = False) -> str:
    names = sorted(shared)
    if names:
        return reason("language", ", ".join(names))
    return reason("language", "not listed by mentor" if mentor_lists_none
                  else "no shared language")


PREFERRED_MENTOR = reason("preference", "preferred mentor")


def preferred_specialties(tags: Iterable[str]) -> str:
    return reason("preference", ", ".join(sorted(tags)))
