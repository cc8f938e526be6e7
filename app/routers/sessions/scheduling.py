"""Free slots (mentee and mentor) and the mentor's time off."""

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import TypeAdapter

from app.core.auth import CurrentMentee, CurrentMentor
from app.core.db import DbSession
from app.core.instants import BoundedDatetime
from app.core.problems import problems
from app.core.state import SettingsDep
from app.schemas.common import Page
from app.schemas.scheduling import (
    SlotsPublic,
    TimeOffCreate,
    TimeOffCreated,
    TimeOffPublic,
)
from app.services.sessions import scheduling, slots, time_off

router = APIRouter()

SlotsFrom = Annotated[BoundedDatetime | None, Query(
    alias="from", description="Earliest start (default: now)")]
SlotsTo = Annotated[BoundedDatetime | None, Query(
    alias="to", description="Starts before this instant (default: from + 7 days; at most "
                            "31 days after from, else 422)")]
Duration = Annotated[int, Query(ge=15, le=240, description="Whole minutes, 15 to 240")]

SLOTS_DESCRIPTION = (
    "Start times on the `SLOT_STEP_MINUTES` grid (default 15) of the mentor's local time, "
    "in [from, to), at which a session of `duration_minutes` books right now: inside the "
    "mentor's weekly windows (in the mentor's zone, across DST changes), outside time off, "
    "at least the mentor's buffer away from their other live sessions, clear of the "
    "mentee's sessions, in an ISO week (mentor's zone) with a weekly slot left{notice}. "
    "The booking routes apply exactly these rules, so a slot offered books unless taken "
    "meanwhile.")


_SLOTS_KEY = '{"slots":[]'
_MINUTE_US = 60_000_000
_TIMES = [f"{m // 60:02d}:{m % 60:02d}:00Z" for m in range(1440)]  # pydantic's UTC format
_INSTANT = TypeAdapter(datetime)


def _slot_items(starts: list[int], duration: int) -> list[str]:
    """Each slot's JSON object as pydantic writes it. Slots sit on whole minutes: each
    instant is a per-day prefix plus a per-minute suffix, in one pass of integer
    arithmetic; any other instant is formatted by pydantic itself."""
    if any(at % _MINUTE_US for at in starts):
        def instant(at: int) -> str:
            return _INSTANT.dump_json(slots.from_us(at)).decode()
        length = duration * _MINUTE_US
        return [f'{{"starts_at":{instant(at)},"ends_at":{instant(at + length)}}}'
                for at in starts]
    minutes = [at // _MINUTE_US for at in starts]
    first_day = minutes[0] // 1440
    days = [slots.from_us((first_day + d) * 1440 * _MINUTE_US).date().isoformat() + "T"
            for d in range((minutes[-1] + duration) // 1440 - first_day + 1)]
    return [f'{{"starts_at":"{days[m // 1440 - first_day]}{_TIMES[m % 1440]}",'
            f'"ends_at":"{days[e // 1440 - first_day]}{_TIMES[e % 1440]}"}}'
            for m, e in ((m, m + duration) for m in minutes)]


def slots_json(rules, starts: list[int], *, duration: int, step: int) -> str:
    """The `SlotsPublic` body: its scalar fields serialised by the model itself, the slot
    list (hundreds of items) written directly, which costs a fraction of building and
    dumping one model per slot (tests/sessions/test_slots_json.py pins the two equal).
    `starts`: sorted, microseconds since the epoch."""
    rest = SlotsPublic(slots=[], timezone=str(rules.zone), duration_minutes=duration,
                       step_minutes=step).model_dump_json()
    assert rest.startswith(_SLOTS_KEY)
    items = ",".join(_slot_items(starts, duration)) if starts else ""
    return '{"slots":[' + items + "]" + rest[len(_SLOTS_KEY):]


def _public(rules, starts: list[int], *, duration: int, settings) -> Response:
    return Response(slots_json(rules, starts, duration=duration,
                               step=settings.slot_step_minutes),
                    media_type="application/json")


@router.get(
    "/api/v1/mentee/slots",
    tags=["mentee sessions"],
    operation_id="list_mentee_slots",
    summary="Times you can book with your mentor",
    description=SLOTS_DESCRIPTION.format(notice=", and no sooner than the mentor's minimum "
                                                "notice") + " 409 `no_mentor` without a mentor.",
    response_model=SlotsPublic,
    responses=problems({409: ["no_mentor"]}),
)
async def list_mentee_slots(principal: CurrentMentee, session: DbSession, settings: SettingsDep,
                            starts_from: SlotsFrom = None, starts_to: SlotsTo = None,
                            duration_minutes: Duration = 60) -> Response:
    rules, slots = await scheduling.free_slots(
        session, principal=principal, settings=settings,
        starts_from=starts_from, starts_to=starts_to, duration_minutes=duration_minutes)
    return _public(rules, slots, duration=duration_minutes, settings=settings)


@router.get(
    "/api/v1/mentor/mentees/{mentee_id}/slots",
    tags=["mentor sessions"],
    operation_id="list_mentor_slots",
    summary="Times you can book with one of your mentees",
    description=SLOTS_DESCRIPTION.format(notice=" (your minimum notice binds mentees only)")
    + " 404 `not_assigned` for a mentee who is not yours.",
    response_model=SlotsPublic,
    responses=problems({404: ["not_assigned"]}),
)
async def list_mentor_slots(mentee_id: uuid.UUID, principal: CurrentMentor,
                            session: DbSession, settings: SettingsDep,
                            starts_from: SlotsFrom = None, starts_to: SlotsTo = None,
                            duration_minutes: Duration = 60) -> Response:
    rules, slots = await scheduling.free_slots(
        session, principal=principal, settings=settings,
        starts_from=starts_from, starts_to=starts_to, duration_minutes=duration_minutes,
        mentee_id=mentee_id)
    return _public(rules, slots, duration=duration_minutes, settings=settings)


@router.get(
    "/api/v1/mentor/time-off",
    tags=["mentor profile"],
    operation_id="list_time_off",
    summary="Your time off (current and future by default), by start",
    response_model=Page[TimeOffPublic],
    responses=problems({422: ["invalid_cursor"]}),
)
async def list_time_off(
    principal: CurrentMentor, session: DbSession,
    ends_after: Annotated[BoundedDatetime | None, Query(
        alias="from", description="Periods ending after this instant (default: now)")] = None,
    starts_before: Annotated[BoundedDatetime | None, Query(
        alias="to", description="Periods starting before this instant")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Page[TimeOffPublic]:
    items, next_cursor = await time_off.list_time_off(
        session, principal=principal, ends_after=ends_after, starts_before=starts_before,
        limit=limit, cursor=cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/api/v1/mentor/time-off",
    tags=["mentor profile"],
    operation_id="add_time_off",
    summary="Take time off",
    description="No session may start or run inside (booking: 409 `outside_availability`). "
                "Your sessions already inside are not touched; they are listed in "
                "`conflicts`.",
    status_code=201,
    response_model=TimeOffCreated,
    responses=problems({404: ["not_found"]}),
)
async def add_time_off(body: TimeOffCreate, principal: CurrentMentor,
                       session: DbSession) -> TimeOffCreated:
    return await time_off.add_time_off(session, principal=principal, body=body)


@router.delete(
    "/api/v1/mentor/time-off/{time_off_id}",
    tags=["mentor profile"],
    operation_id="delete_time_off",
    summary="Remove time off",
    status_code=204,
    response_class=Response,
    responses=problems({404: ["not_found"]}),
)
async def delete_time_off(time_off_id: uuid.UUID, principal: CurrentMentor,
                          session: DbSession) -> Response:
    await time_off.delete_time_off(session, principal=principal, time_off_id=time_off_id)
    return Response(status_code=204)


