"""Keyset cursors: typed, signed, opaque.

A cursor is `<payload>.<tag>`, both base64url: the payload is `[kind, value, ...]` (JSON), the
tag an HMAC-SHA256 of it. The key is derived from the deployment's secret settings
(`CURSOR_SECRET`, else `JWT_SECRET`, else `ADMIN_SECRET_KEY`; with none of them, a random
key per process, so cursors then only work against the process that issued them). A client
cannot forge or edit a position, and a cursor of one list is not accepted by another (the
kind is signed too). Anything that is not exactly what `Keyset.encode` wrote (no tag, a wrong
tag, garbage, a value of the wrong type: a naive or out-of-range instant, NUL in text) is 422
`invalid_cursor`, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.config import Settings, get_settings
from app.core.errors import Unprocessable

INVALID_CURSOR = "The cursor is not one this service issued"
TAG_BYTES = 16  # 128-bit tags: forging one is out of reach, and cursors stay short
_key: bytes | None = None
KEYSETS: dict[str, Keyset] = {}  # every list's cursor, by kind (tests forge each)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cursor_key(settings: Settings) -> bytes:
    """The signing key for these settings (derived, so it never equals the JWT secret)."""
    material = next((value for value in (
        settings.cursor_secret.get_secret_value() if settings.cursor_secret else None,
        settings.jwt_secret, settings.admin_secret_key) if value), None)
    if material is None:
        return secrets.token_bytes(32)
    return hmac.new(material.encode(), b"mentorship keyset cursor v1", hashlib.sha256).digest()


def configure(settings: Settings) -> None:
    """Called when the app is built: cursors are signed with this deployment's key."""
    global _key
    _key = cursor_key(settings)


def _signing_key() -> bytes:
    global _key
    if _key is None:  # a service used outside the app (a script, a test): the env's settings
        _key = cursor_key(get_settings())
    return _key


def _tag(payload: bytes) -> bytes:
    return hmac.new(_signing_key(), payload, hashlib.sha256).digest()[:TAG_BYTES]


def sign(payload: list[Any]) -> str:
    """The cursor of a JSON payload `[kind, value, ...]` (Keyset.encode; tests forge with it)."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return f"{_b64(raw)}.{_b64(_tag(raw))}"


class Keyset:
    """The cursor of one list: its kind and the types of the position's values, e.g.
    `Keyset("sessions", BoundedDatetime, uuid.UUID)`."""

    def __init__(self, kind: str, *types: Any, detail: str = INVALID_CURSOR) -> None:
        if kind in KEYSETS:
            raise ValueError(f"two lists share the cursor kind {kind!r}")
        self.kind, self.types, self.detail = kind, types, detail
        self._adapter: TypeAdapter[Any] = TypeAdapter(tuple[types])  # type: ignore[valid-type]
        KEYSETS[kind] = self

    def encode(self, *values: Any) -> str:
        return sign([self.kind, *self._adapter.dump_python(tuple(values), mode="json")])

    def decode(self, cursor: str | None) -> tuple[Any, ...] | None:
        """The position, or `None` for the first page (no cursor, or an empty one)."""
        if not cursor:
            return None
        try:
            payload_text, _, tag_text = cursor.partition(".")
            payload, tag = _unb64(payload_text), _unb64(tag_text)
            if len(tag) != TAG_BYTES or not hmac.compare_digest(tag, _tag(payload)):
                raise ValueError("bad tag")
            kind, *position = json.loads(payload)
            if kind != self.kind:
                raise ValueError("another list's cursor")
            return self._adapter.validate_python(tuple(position))
        except (ValueError, TypeError, binascii.Error, UnicodeError, ValidationError) as exc:
            raise Unprocessable(self.detail, code="invalid_cursor") from exc
