"""Admin routes for webhook endpoints and their delivery log (role admin)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status

from app.core.auth import CurrentAdmin
from app.core.db import DbSession
from app.core.problems import problems
from app.core.state import SettingsDep
from app.schemas.common import Page
from app.schemas.events import (
    WebhookAttemptPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryPublic,
    WebhookPublic,
)
from app.services.events import webhooks

router = APIRouter(prefix="/api/v1/admin/webhooks", tags=["webhooks"])


@router.get("", operation_id="list_webhooks", summary="Active webhook endpoints, oldest first",
            response_model=Page[WebhookPublic], responses=problems({422: ["invalid_cursor"]}))
async def list_webhooks(
    principal: CurrentAdmin, session: DbSession,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Page[WebhookPublic]:
    rows, next_cursor = await webhooks.list_endpoints(session, limit=limit, cursor=cursor)
    return Page[WebhookPublic](items=[WebhookPublic.model_validate(r) for r in rows],
                               next_cursor=next_cursor)


@router.post(
    "", operation_id="create_webhook", summary="Register a webhook endpoint",
    description="The signing `secret` (`whsec_...`) is in this response only: store it. "
                "Deliveries carry `webhook-id`, `webhook-timestamp` and `webhook-signature` "
                "(Standard Webhooks). Only http(s) URLs without credentials. A URL whose "
                "host is or resolves to a link-local or cloud metadata address (always), or "
                "a loopback or private one (unless `WEBHOOK_ALLOW_PRIVATE`), is refused: 422 "
                "`webhook_url_not_allowed`; deliveries check the resolved address again.",
    status_code=status.HTTP_201_CREATED, response_model=WebhookCreated,
    responses=problems({422: ["webhook_url_not_allowed"]}),
)
async def create_webhook(body: WebhookCreate, principal: CurrentAdmin, session: DbSession,
                         settings: SettingsDep) -> WebhookCreated:
    row, secret = await webhooks.create_endpoint(session, endpoint=body, settings=settings)
    return WebhookCreated(**WebhookPublic.model_validate(row).model_dump(), secret=secret)


@router.delete(
    "/{endpoint_id}", operation_id="delete_webhook", summary="Remove a webhook endpoint",
    description="Stops deliveries to it (pending ones become `failed`); its delivery log "
                "stays readable.",
    status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
    responses=problems({404: ["not_found"]}),
)
async def delete_webhook(endpoint_id: uuid.UUID, principal: CurrentAdmin,
                         session: DbSession) -> Response:
    await webhooks.delete_endpoint(session, endpoint_id=endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{endpoint_id}/deliveries", operation_id="list_webhook_deliveries",
    summary="An endpoint's deliveries, newest first, with every attempt",
    response_model=Page[WebhookDeliveryPublic],
    responses=problems({404: ["not_found"], 422: ["invalid_cursor"]}),
)
async def list_deliveries(
    endpoint_id: uuid.UUID, principal: CurrentAdmin, session: DbSession,
    status_filter: Annotated[Literal["pending", "delivered", "failed"] | None,
                             Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Page[WebhookDeliveryPublic]:
    rows, attempts, next_cursor = await webhooks.list_deliveries(
        session, endpoint_id=endpoint_id, status=status_filter, limit=limit, cursor=cursor)
    items = [
        WebhookDeliveryPublic.model_validate(row).model_copy(update={
            "attempt_log": [WebhookAttemptPublic.model_validate(a) for a in attempts[row.id]]
        })
        for row in rows
    ]
    return Page[WebhookDeliveryPublic](items=items, next_cursor=next_cursor)
