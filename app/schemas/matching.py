"""Shapes of the director's matching routes and of the mentee's preferences."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.models.preferences import MAX_TIMEZONE_OFFSET_HOURS
from app.schemas.limits import Languages
from app.schemas.types import OutputText, Tag

RunStatus = Literal["queued", "running", "done", "failed", "skipped"]

WEIGHTS_DOC = (
    "Weights of the fit's four terms for this run; a term left out keeps its default "
    "(specialty 0.5, timezone 0.2, load 0.15, language 0.15, settings `MATCH_WEIGHT_*`). "
    "Each is a number >= 0 (at most 1000); at least one must be positive; they are "
    "normalised to sum 1 and recorded with the run. The fit of a pair is the weighted sum "
    "of: `specialty` (share of the mentee's topics, their interests and preferred "
    "specialties, that the mentor covers), `timezone` (1 - gap / 12, the gap being the "
    "largest UTC offset difference over the year, January and July, so both sides' "
    "daylight saving time counts), `load` (1 - the mentor's active mentees / maximum), "
    "`language` (1 when they share a language or the mentee names none, 0.5 when the "
    "mentor lists none, 0 otherwise); plus a `preference` boost of 0.1 for a mentor the "
    "mentee prefers and up to 0.1 for the share of their preferred specialties the mentor "
    "covers (`MATCH_PREFERENCE_BOOST`). A fit lies in [0, 1.2].")


class MatchingWeights(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"description": WEIGHTS_DOC})

    specialty: float | None = Field(None, ge=0, le=1000, allow_inf_nan=False)
    timezone: float | None = Field(None, ge=0, le=1000, allow_inf_nan=False)
    load: float | None = Field(None, ge=0, le=1000, allow_inf_nan=False)
    language: float | None = Field(None, ge=0, le=1000, allow_inf_nan=False)

    def given(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class MatchingRunCreate(BaseModel):
    """Optional scope of a run (a cohort; without it every unassigned mentee and every
    mentor with a free place take part), dry run, weights."""

    model_config = ConfigDict(extra="forbid")

    mentee_ids: list[uuid.UUID] | None = Field(None, max_length=50_000)
    mentor_ids: list[uuid.UUID] | None = Field(None, max_length=10_000)
    dry_run: bool = Field(False, description=(
        "Compute the proposals only: the same solver on the same data, nothing written but "
        "the run and its proposals (read them at `run_url`, publish them with "
        "`POST .../runs/{job_id}/publish`)."))
    weights: MatchingWeights | None = Field(None, description=WEIGHTS_DOC)


class MatchingRunAccepted(BaseModel):
    job_id: OutputText
    status: RunStatus
    dry_run: bool
    weights: dict[OutputText, float] = Field(description="The normalised weights the run will use.")
    run_url: OutputText = Field(description="Where the run's result can be read.")


UNPLACED_DETAILS = {
    "no_capacity": "fewer free places than mentees: the places went to better fits",
    "no_candidate": "no mentor had a free place",
    "assigned_concurrently": "a director assigned the mentee during the run",
    "max_timezone_offset_hours": "the mentee's max_timezone_offset_hours left out mentors "
                                 "with free places (none within it, or those went to others)",
}


class UnplacedMentee(BaseModel):
    mentee_id: uuid.UUID
    reason: OutputText = Field(description="`no_capacity`, `no_candidate`, `assigned_concurrently` "
                        "or `max_timezone_offset_hours` (the limit that stopped them)")
    detail: OutputText


class ProposalComponents(BaseModel):
    specialty: float
    timezone: float
    load: float
    language: float
    preference: float


class ProposalPublic(BaseModel):
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    fit: float = Field(description="The pair's fit (0..1.2), rounded to 3 decimals.")
    components: ProposalComponents = Field(
        description="Each weighted term of the fit (rounded to 4 decimals): their sum is "
        "the fit.")
    reasons: list[OutputText] = Field(description="`<term>: <detail>`, the format of every "
                               "assignment's reasons, e.g. `specialty: data, python`.")


class SkippedProposal(BaseModel):
    mentee_id: uuid.UUID
    mentor_id: uuid.UUID
    reason: Literal["excluded", "mentee_not_waiting", "not_a_mentee", "not_a_mentor",
                    "max_timezone_offset_hours", "mentor_full"]


class MatchingRunPublic(BaseModel):
    job_id: OutputText
    status: RunStatus
    dry_run: bool
    weights: dict[OutputText, float] | None
    requested_by: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(description="Tries so far (a crashed or failed try is re-run).")
    assigned_count: int | None = Field(
        description="Assignments written; for a dry run, proposals written.")
    unplaced_count: int | None
    total_fit: float | None = Field(
        description="Sum of the new assignments' (or proposals') fits.")
    duration_ms: int | None
    solver_ms: int | None
    unplaced: list[UnplacedMentee]
    error: OutputText | None
    published_at: datetime | None = None
    published_by: uuid.UUID | None = None
    published_count: int | None = None
    proposals_expired_at: datetime | None = Field(
        None, description="When retention deleted the proposals of this dry run (never "
        "published, finished `RETENTION_MATCHING_DRY_RUNS_DAYS` before); `proposals` is then "
        "empty and it cannot be published. Null otherwise.")
    proposals: list[ProposalPublic] = Field(
        default_factory=list,
        description="A dry run's proposals in mentee id order, a page at a time "
        "(`?limit=`, `?cursor=`, or `?mentee_id=`).")
    proposals_next_cursor: OutputText | None = None


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    exclude_mentee_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=50_000,
        description="Mentees whose proposals are not published (they stay waiting).")


class PublishResult(BaseModel):
    job_id: OutputText
    published_at: datetime
    published: int
    total_fit: float
    skipped: list[SkippedProposal]


# --- mentee preferences --------------------------------------------------------------------

def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _tags(values: list[str]) -> list[str]:
    cleaned = [v.strip() for v in values]
    if any(not v or len(v) > 100 or "\x00" in v for v in cleaned):
        raise ValueError("each specialty is 1 to 100 characters")
    return _unique(cleaned)


class MenteePreferences(BaseModel):
    """What the matcher honours for the mentee: preferred specialties and mentors raise the
    fit (the preference boost); languages feed the language term; the offset is a hard
    limit, the same all year (the gap is the largest between January and July)."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    specialties: Annotated[list[Tag], Field(max_length=20), AfterValidator(_tags)] = []
    languages: Languages = []
    max_timezone_offset_hours: float | None = Field(
        None, ge=0, le=MAX_TIMEZONE_OFFSET_HOURS, allow_inf_nan=False,
        description="Never a mentor further than this many hours away (null: no limit). "
        "Unplaced for this reason, a mentee's reason is `max_timezone_offset_hours`.")
    preferred_mentor_ids: Annotated[list[uuid.UUID], Field(max_length=10),
                                    AfterValidator(_unique)] = Field(
        default_factory=list,
        description="Mentors the mentee would like; ids that are not mentors are ignored.")


class MenteePreferencesPublic(MenteePreferences):
    updated_at: datetime | None
