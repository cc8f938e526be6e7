"""Each outbound event type as delivered: the envelope (`OutboundEvent`) with that type's
`data` model (app/schemas/event_data.py). The event catalogue and the OpenAPI `webhooks`
take their payload schemas from here."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, create_model

from app.schemas.event_data import OUTBOUND_DATA
from app.schemas.events import OutboundEvent


def _envelope(event_type: str, data: type[BaseModel]) -> type[OutboundEvent]:
    name = "".join(part.title() for part in re.split(r"[._]", event_type)) + "Event"
    return create_model(name, __base__=OutboundEvent, __doc__=f"Outbound `{event_type}`.",
                        type=(Literal[event_type], ...), data=(data, ...))


# type -> the whole event as delivered (envelope + that type's data): the catalogue's and
# the OpenAPI webhook's payload schemas.
OUTBOUND_EVENTS: dict[str, type[OutboundEvent]] = {
    event_type: _envelope(event_type, data) for event_type, data in OUTBOUND_DATA.items()}
AnyOutboundEvent = Annotated[Union[tuple(OUTBOUND_EVENTS.values())],  # noqa: UP007
                             Field(discriminator="type")]
