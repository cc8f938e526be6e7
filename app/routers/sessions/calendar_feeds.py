"""Calendar subscription URLs (feed tokens) and the feed they open."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from app.core.auth import Principal, require_roles
from app.core.db import DbSession
from app.core.errors import NotFound
from app.core.problems import problems
from app.core.state import StateDep
from app.schemas.types import Identifier
from app.services.sessions import calendar, feeds

router = APIRouter()

FeedOwner = Annotated[Principal, Depends(require_roles("mentor", "mentee"))]
ICS_HEADERS = {"Content-Disposition": 'inline; filename="mentorship.ics"',
               "Cache-Control": "private, max-age=300"}


class FeedTokenPublic(BaseModel):
    url: str = Field(description="The subscription URL (absolute, from PUBLIC_BASE_URL when "
                                 "set); shown once: only a hash of its token is stored")


@router.post(
    "/api/v1/calendar/feed-token",
    tags=["calendar"],
    operation_id="issue_calendar_feed_token",
    summary="A calendar subscription URL that works without a JWT (mentor or mentee)",
    description="Returns `/api/v1/calendar/feeds/{token}.ics` as an absolute URL. It works "
                "until you ask for a new one (which revokes it), revoke it with DELETE, or "
                "your account is deactivated. The token is random, not a JWT.",
    status_code=201,
    response_model=FeedTokenPublic,
)
async def issue_feed_token(principal: FeedOwner, session: DbSession, state: StateDep,
                           request: Request) -> FeedTokenPublic:
    token = await feeds.issue_feed_token(session, principal=principal)
    base = state.settings.public_base_url or str(request.base_url)
    return FeedTokenPublic(url=feeds.feed_url(token, base_url=base))


@router.delete(
    "/api/v1/calendar/feed-token",
    tags=["calendar"],
    operation_id="revoke_calendar_feed_token",
    summary="Revoke your calendar subscription URL",
    status_code=204,
    response_class=Response,
    responses=problems({404: ["feed_not_found"]}),
)
async def revoke_feed_token(principal: FeedOwner, session: DbSession) -> Response:
    if not await feeds.revoke_feed_token(session, principal=principal):
        raise NotFound("You have no calendar subscription URL", code="feed_not_found")
    return Response(status_code=204)


@router.get(
    "/api/v1/calendar/feeds/{token}.ics",
    tags=["calendar"],
    operation_id="calendar_feed_by_token",
    summary="Your sessions as an iCalendar feed, by subscription URL (no JWT)",
    description="The same document as `GET /api/v1/calendar.ics`. 404 `feed_not_found` "
                "once the URL was rotated or revoked, or its owner deactivated.",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {"schema": {"type": "string"}}},
              "description": "An iCalendar (RFC 5545) document"},
        **problems({404: ["feed_not_found"]}),
    },
)
async def calendar_feed_by_token(
    token: Annotated[Identifier, Path(description="The feed token")],
    state: StateDep,
) -> Response:
    async with state.db.transaction(None) as session:
        principal = await feeds.act_as_feed_owner(session, token=token)
        if principal is None:
            raise NotFound("No such calendar feed", code="feed_not_found")
        body = await calendar.calendar_feed(session, principal=principal,
                                            settings=state.settings)
    return Response(content=body, media_type="text/calendar; charset=utf-8",
                    headers=ICS_HEADERS)
