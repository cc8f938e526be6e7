"""Conditional GETs and API evolution headers.

- `conditional_json`: a weak `ETag` computed from the response data without its volatile
  fields (`generated_at`), so an SPA polling the dashboard or a cockpit gets `304 Not
  Modified` with no body while nothing it shows has changed.
- `deprecated_route`: a dependency that marks a route with `Deprecation` (RFC 9745) and
  `Sunset` (RFC 8594) headers, plus a `Link` to its successor; pair it with
  `deprecated=True` on the route so the OpenAPI document says so too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

from fastapi import Request, Response
from pydantic import BaseModel

CACHE_CONTROL = "private, no-cache"  # always revalidate; never shared between users


def entity_tag(canonical: bytes) -> str:
    digest = hashlib.blake2b(canonical, digest_size=12)
    return f'W/"{digest.hexdigest()}"'


def _matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    opaque = tag.removeprefix("W/")  # If-None-Match uses the weak comparison
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in header.split(","))


def conditional_json(request: Request, model: BaseModel, *,
                     volatile: frozenset[str] = frozenset({"generated_at"})) -> Response:
    # Straight to JSON bytes in pydantic's core, twice (without the volatile fields for the
    # tag: the field order is the model's, so the text is canonical), rather than a dict
    # of the model then `json.dumps` of it twice.
    tag = entity_tag(model.__pydantic_serializer__.to_json(model, exclude=set(volatile)))
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return Response(model.__pydantic_serializer__.to_json(model), headers=headers,
                    media_type="application/json")


def deprecated_route(*, sunset: datetime, successor: str | None = None,
                     since: datetime | None = None) -> Callable[[Response], None]:
    """`Depends(deprecated_route(sunset=...))`: every response of the route says when it
    was deprecated, when it stops working, and what replaces it."""
    deprecation = f"@{int((since or datetime.now(UTC)).timestamp())}"
    sunset_value = format_datetime(sunset.astimezone(UTC), usegmt=True)

    async def add_headers(response: Response) -> None:  # async: no thread pool hop
        response.headers["Deprecation"] = deprecation
        response.headers["Sunset"] = sunset_value
        if successor:
            response.headers["Link"] = f'<{successor}>; rel="successor-version"'

    return add_headers
