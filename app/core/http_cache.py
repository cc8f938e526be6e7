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
import json
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

CACHE_CONTROL = "private, no-cache"  # always revalidate; never shared between users


def entity_tag(data: object) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.blake2b(canonical.encode(), digest_size=12)
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
    body = model.model_dump(mode="json")
    tag = entity_tag({key: value for key, value in body.items() if key not in volatile})
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(body, headers=headers)


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
