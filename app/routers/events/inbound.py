"""Service routes: inbound events and user provisioning (role service, or admin)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Response, status
from fastapi.responses import JSONResponse

from app.core.auth import CurrentService
from app.core.db import DbSession
from app.core.errors import Unprocessable
from app.core.problems import problems
from app.core.state import SettingsDep, StateDep
from app.routers.sessions.booking import Video
from app.schemas.events import EventsAccepted, EventsIn, UserPublic, UserUpsert, UserUpserted
from app.schemas.outbound_events import AnyOutboundEvent
from app.services.events import inbound, users
from app.services.events.catalogue import asyncapi_document

USER_CONFLICTS = ["email_taken", "erased", "concurrent_change"]
router = APIRouter(prefix="/api/v1", tags=["service"])

EVENTS_DESCRIPTION = """
One inbound event, or `{"events": [...]}` with up to 500. Envelope:
`{"id", "type", "occurred_at", "source", "data"}`; `type` is one of `user.upserted`,
`mission.submitted`, `habit.streak_broken`, `goal.overdue`, `readiness.updated`.

- **Idempotent by event `id`**: an id seen before (or twice in one batch) has no effect and
  is reported in `duplicate_ids`; the answer is still 202. Safe to retry after a timeout.
- **All or nothing**: a batch is one transaction. An unknown `type`, a bad payload or an
  event about an unknown mentee (422 `unknown_mentee`: send `user.upserted` first) refuses
  the whole batch; `errors[].loc` is `["body", "events", <index>, ...]` (a single event is
  index 0).
- SLA clocks start at `submitted_at` / `occurred_at` (never later than now):
  `mission_review` is due 48 h after the submission.
"""


@router.post(
    "/events",
    operation_id="post_events",
    summary="Ingest inbound events (one or a batch)",
    description=EVENTS_DESCRIPTION,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventsAccepted,
    responses=problems({409: USER_CONFLICTS, 422: ["unknown_mentee", "batch_too_large"]}),
)
async def post_events(
    body: EventsIn, principal: CurrentService, session: DbSession, settings: SettingsDep,
    video: Video, state: StateDep, background: BackgroundTasks,
) -> EventsAccepted:
    if len(body.events) > settings.events_max_batch:
        raise Unprocessable(f"At most {settings.events_max_batch} events per request",
                            code="batch_too_large")
    result = await inbound.ingest_events(session, events=body.events, settings=settings,
                                         principal=principal, video=video)
    # After the commit, as the deactivate route does: a deactivation, reactivation or role
    # change through `user.upserted` takes effect at once in this process (other replicas
    # within AUTH_CACHE_SECONDS).
    upserted = [event.data.id for event in body.events if isinstance(event, UserUpserted)]
    if upserted:
        background.add_task(state.identities.forget, *upserted)
    return EventsAccepted(accepted=result.accepted, duplicates=len(result.duplicate_ids),
                          duplicate_ids=result.duplicate_ids)


@router.put(
    "/users/{user_id}",
    operation_id="upsert_user",
    summary="Provision or update a user (idempotent upsert)",
    description="201 when created, 200 when updated or unchanged. Only the fields sent are "
                "written on update; `is_mentor` defaults to `role == 'mentor'`. A role change "
                "that makes a mentee something else ends their active assignment (and a "
                "mentor who stops being one: their mentees' assignments), cancelling the "
                "pair's future sessions; `active: false` deactivates the user as `POST "
                "/api/v1/users/{user_id}/deactivate` does; `active: true` brings them back "
                "without relationships.",
    response_model=UserPublic,
    responses={201: {"model": UserPublic, "description": "Created"},
               **problems({404: ["not_found"], 409: USER_CONFLICTS})},
)
async def put_user(
    user_id: uuid.UUID, body: UserUpsert, principal: CurrentService, session: DbSession,
    response: Response, video: Video, state: StateDep, background: BackgroundTasks,
) -> UserPublic:
    created = await users.provision_user(session, principal=principal, user_id=user_id,
                                           user=body, video=video)
    # After the commit: `active` or `role` changed here holds at once in this process.
    background.add_task(state.identities.forget, user_id)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return UserPublic.model_validate(await users.get_user(session, user_id=user_id))


# At the root, beside /openapi.json.
catalogue = APIRouter()


@catalogue.get("/asyncapi.json", include_in_schema=False)
async def event_catalogue() -> JSONResponse:
    """The AsyncAPI 3 document of every event in and out (linked from /docs)."""
    return JSONResponse(asyncapi_document())


# OpenAPI 3.1 `webhooks`: what a registered endpoint receives (app.webhooks in create_app).
webhooks = APIRouter()


@webhooks.post(
    "outbound-event", operation_id="outbound_event", tags=["webhooks"],
    summary="An outbound event delivered to a registered endpoint",
    description="POSTed with headers `webhook-id` (the event id), `webhook-timestamp` and "
                "`webhook-signature: v1,<base64 HMAC-SHA256>` over `id.timestamp.body` with "
                "the endpoint's `whsec_` secret (Standard Webhooks: verify with the "
                "`standardwebhooks` library). Any 2xx acknowledges; anything else, a timeout "
                "or a refused connection is retried with exponential backoff for at least a "
                "day. Every event type is in the catalogue, `/asyncapi.json`.",
    responses={200: {"description": "Acknowledged (any 2xx)"}},
)
async def outbound_event(body: AnyOutboundEvent) -> None:
    """Documentation only: the engine sends this request, it does not serve it."""
