"""The event catalogue: an AsyncAPI 3 document of every event in and out, built from the
models the code validates with: inbound, the envelopes `POST /api/v1/events` accepts;
outbound, each type's envelope with its `data` model, which the outbox validates every
event's data with (app/schemas/event_data.py).

Channels: the inbound endpoint (`POST /api/v1/events`), the SSE streams, and the webhook
deliveries. Served at `/asyncapi.json` and linked from `/docs`; validated in CI with the
AsyncAPI parser (tests/contract/test_event_catalogue.py).
"""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.core.outbox import REFRESH_PRIORITY
from app.schemas.events import InboundEvent
from app.schemas.outbound_events import OUTBOUND_EVENTS

REF = "#/components/schemas/{model}"
# The SSE streams: path -> who reads it.
STREAMS = {
    "mentorStream": ("/api/v1/mentor/dashboard/stream", "The mentor's live dashboard"),
    "menteeStream": ("/api/v1/mentee/stream", "The mentee's own events"),
    "directorStream": ("/api/v1/director/stream", "Flags, capacity, assignments, matching"),
}


def _inbound_models() -> list[type[BaseModel]]:
    union = get_args(InboundEvent)[0]
    return list(get_args(union))


def _message(name: str, schema_ref: str, summary: str) -> dict[str, Any]:
    return {"name": name, "title": name, "summary": summary, "contentType": "application/json",
            "payload": {"$ref": schema_ref}}


@cache
def asyncapi_document() -> dict[str, Any]:
    inbound = _inbound_models()
    refs, definitions = models_json_schema(
        [(model, "validation") for model in [*inbound, *OUTBOUND_EVENTS.values()]],
        ref_template=REF)
    schemas = definitions["$defs"]
    messages: dict[str, Any] = {}
    for model in inbound:
        event_type = get_args(model.model_fields["type"].annotation)[0]
        messages[event_type] = _message(event_type, refs[(model, "validation")]["$ref"],
                                        (model.__doc__ or f"Inbound {event_type}").strip())
    for event_type, priority in REFRESH_PRIORITY.items():
        messages[event_type] = _message(
            event_type, refs[(OUTBOUND_EVENTS[event_type], "validation")]["$ref"],
            f"Outbound `{event_type}` (refresh_priority {priority}): to the SSE streams of the "
            "users it concerns and to every webhook endpoint; `data` as in the payload schema.")
    schemas["Snapshot"] = {"type": "object", "description": "The stream's first event: the "
                           "current state (the dashboard body for a mentor)."}
    messages["snapshot"] = _message("snapshot", REF.format(model="Snapshot"),
                                    "First event of every (re)connection that cannot resume")
    outbound = {t: {"$ref": f"#/components/messages/{t}"} for t in REFRESH_PRIORITY}
    channels: dict[str, Any] = {
        "inboundEvents": {
            "address": "/api/v1/events",
            "description": "POST one event or `{\"events\": [...]}` (role service); "
                           "idempotent by event id.",
            "messages": {t: {"$ref": f"#/components/messages/{t}"}
                         for t in messages if t not in outbound and t != "snapshot"},
        },
        "webhooks": {
            "address": "{endpointUrl}",
            "parameters": {"endpointUrl": {"description": "A registered webhook endpoint "
                                                          "(POST /api/v1/admin/webhooks)"}},
            "description": "POST of the event, headers `webhook-id`, `webhook-timestamp`, "
                           "`webhook-signature: v1,<base64 HMAC-SHA256>` (Standard Webhooks); "
                           "retried with exponential backoff for at least a day.",
            "messages": outbound,
        },
    }
    for name, (address, description) in STREAMS.items():
        channels[name] = {
            "address": address,
            "description": f"{description}: Server-Sent Events; `id:` on every event, resume "
                           "with `Last-Event-ID`, a comment ping every 15 s.",
            "messages": {"snapshot": {"$ref": "#/components/messages/snapshot"}, **outbound},
        }
    operations = {
        "receiveInboundEvents": {"action": "receive",
                                 "channel": {"$ref": "#/channels/inboundEvents"}},
        "sendWebhooks": {"action": "send", "channel": {"$ref": "#/channels/webhooks"}},
        **{f"send{name[0].upper()}{name[1:]}": {"action": "send",
                                                "channel": {"$ref": f"#/channels/{name}"}}
           for name in STREAMS},
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Mentorship Coordination Engine: events", "version": "1.0.0",
                 "description": "Every event the engine receives and sends. Envelope in and "
                                "out: `{id, type, occurred_at, source, data}`; outbound "
                                "events add `refresh_priority`."},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
