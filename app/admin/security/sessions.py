"""Server-side admin sessions in Redis, so logging out revokes the session everywhere.

The cookie carries only a random session id (256 bits), signed with `ADMIN_SECRET_KEY`
(a cookie signed with any other key, the public development key included, is ignored).
The session's data lives in Redis under `{REDIS_PREFIX}admin:session:<sha256 of the id>`
(a leaked Redis dump holds no usable cookie), for at most the session's lifetime. Logout
(or any code that empties `request.session`) deletes the key: a copied cookie then opens
nothing. Every login (a new `user_id` or `since`) gets a fresh id and the old one is deleted,
so an id planted or copied before a login is worthless after it (no session fixation).

Redis unreachable: the request has no session (fail closed: /admin sends to the login).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import itsdangerous
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

log = structlog.get_logger("app.admin")

COOKIE = "mentorship_admin"


def session_key(settings: Settings, session_id: str) -> str:
    digest = hashlib.sha256(session_id.encode()).hexdigest()
    return f"{settings.redis_prefix}admin:session:{digest}"


def _login(data: dict[str, Any]) -> tuple[Any, Any]:
    """What a login sets (auth.py): who, and until when."""
    return data.get("user_id"), data.get("since")


class RedisSessionMiddleware:
    """`scope["session"]` for the admin app, stored server-side (pure ASGI)."""

    def __init__(self, app: ASGIApp, *, settings: Settings, secret_key: str,
                 redis: Callable[[], Redis]) -> None:
        self.app = app
        self.settings = settings
        self.signer = itsdangerous.TimestampSigner(secret_key)
        self.redis = redis
        self.max_age = settings.admin_session_max_age_seconds
        self.secure = "; secure" if settings.environment == "production" else ""

    def _session_id(self, scope: Scope) -> str | None:
        cookie = HTTPConnection(scope).cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            return self.signer.unsign(cookie, max_age=self.max_age).decode()
        except (itsdangerous.BadSignature, UnicodeDecodeError):
            return None

    async def _load(self, session_id: str) -> dict[str, Any]:
        try:
            raw = await self.redis().get(session_key(self.settings, session_id))
        except (RedisError, OSError) as exc:
            log.warning("admin_session_store_unavailable", error=type(exc).__name__)
            return {}
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    async def _store(self, old_id: str | None, new_id: str | None,
                     data: dict[str, Any]) -> None:
        redis = self.redis()
        if old_id and old_id != new_id:
            await redis.delete(session_key(self.settings, old_id))
        if new_id:
            # Never outlive the login's own expiry (`exp`, set by the auth backend).
            ttl = int(data.get("exp", time.time() + self.max_age) - time.time())
            await redis.set(session_key(self.settings, new_id), json.dumps(data),
                            ex=max(1, min(ttl, self.max_age)))

    def _cookie(self, scope: Scope, session_id: str | None) -> str:
        path = scope.get("root_path") or "/"
        if session_id is None:
            return (f"{COOKIE}=; path={path}; expires=Thu, 01 Jan 1970 00:00:00 GMT; "
                    f"max-age=0; httponly; samesite=strict{self.secure}")
        value = self.signer.sign(session_id).decode()
        return (f"{COOKIE}={value}; path={path}; max-age={self.max_age}; httponly; "
                f"samesite=strict{self.secure}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        session_id = self._session_id(scope)
        data = await self._load(session_id) if session_id else {}
        if not data:
            session_id = None  # unknown, expired or revoked: as if there were no cookie
        scope["session"] = data
        before = json.dumps(data, sort_keys=True)
        before_login = _login(data)

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._save(scope, message, session_id, before, before_login)
            await send(message)

        await self.app(scope, receive, send_with_session)

    async def _save(self, scope: Scope, message: Message, session_id: str | None,
                    before: str, before_login: tuple[Any, Any]) -> None:
        data = scope["session"]
        if json.dumps(data, sort_keys=True) == before:
            return
        new_id = None
        if data:
            rotate = session_id is None or _login(data) != before_login
            new_id = secrets.token_urlsafe(32) if rotate else session_id
        try:
            await self._store(session_id, new_id, data)
        except (RedisError, OSError) as exc:
            log.warning("admin_session_store_unavailable", error=type(exc).__name__)
            new_id = None  # not stored: hand out no cookie that would point nowhere
        if new_id != session_id or new_id is None:
            MutableHeaders(scope=message).append("set-cookie", self._cookie(scope, new_id))
