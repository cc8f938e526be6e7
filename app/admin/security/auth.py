"""Who gets into the admin UI and under which database identity.

Who gets in: users whose role is `admin` or `director`, and nobody else. The login form
takes the user's email and either
- a JWT issued by the platform for that user (the same token the API accepts), or
- the shared `ADMIN_UI_PASSWORD`, which has no default: unset (as in production unless an
  operator sets it), only the JWT login works.
Outside development a missing, public (development) or short `ADMIN_SECRET_KEY` (which
signs the session id in the cookie) disables the admin UI: it lets nobody in, whatever
cookie is presented; the API still serves. Repeated failures lock the login (lockout.py).
Every admin request re-reads the user's role, so demoting a user ends their access.

How it reads the database: every transaction of the views first sets `app.user_id` /
`app.role` to the logged-in user, exactly as an API request does (see `AdminSyncSession`).
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqladmin.authentication import AuthenticationBackend
from sqladmin.authorization import AuthorizationBackend
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from app.admin.security.lockout import LoginLockout
from app.admin.security.sessions import RedisSessionMiddleware
from app.config import Settings
from app.core.auth import Principal, decode_token
from app.core.db import SET_PRINCIPAL, Database, principal_parameters
from app.core.errors import Unauthorized
from app.models import (
    User,
)

log = structlog.get_logger("app.admin")

STAFF_ROLES = ("admin", "director")
# Views over tables that RLS shows to admins only.
ADMIN_ONLY = frozenset({"inbox-events", "outbox-events", "webhook-endpoints",
                        "webhook-deliveries", "webhook-attempts"})

# The logged-in staff member of the current admin request (set by `authenticate`, read by
# the transaction hook below). Each request runs in its own task, so it never leaks.
_current: ContextVar[Principal | None] = ContextVar("admin_principal", default=None)


class AdminSyncSession(Session):
    """Session class of the admin views only, so the identity hook touches nothing else."""


@event.listens_for(AdminSyncSession, "after_begin")
def _set_rls_identity(session: Session, transaction: Any, connection: Any) -> None:
    principal = _current.get()
    if principal is not None:  # no identity: RLS shows nothing at all
        connection.execute(SET_PRINCIPAL, principal_parameters(principal))


def _looks_like_jwt(secret: str) -> bool:
    return secret.count(".") == 2 and secret.startswith("eyJ")


class StaffAuthentication(AuthenticationBackend):
    """Login (with lockout), logout (revokes the server-side session) and the check of
    every admin request. `templates` (sqladmin's) is set once the Admin exists."""

    templates: Any = None

    def __init__(self, settings: Settings, database: Database,
                 redis: Callable[[], Redis]) -> None:
        # A key that may not sign (missing, public or short) is replaced by a random one, so
        # no cookie verifies: outside development /admin is then disabled (`enabled`); in
        # development a missing key is simply this process's random key.
        usable = settings.admin_key_usable and settings.admin_secret_key
        self.middlewares = [Middleware(
            RedisSessionMiddleware, settings=settings, redis=redis,
            secret_key=settings.admin_secret_key if usable else secrets.token_urlsafe(32))]
        self.settings = settings
        self.database = database
        self.redis = redis
        self.lockout = LoginLockout(settings)

    @property
    def enabled(self) -> bool:
        return self.settings.admin_key_usable

    async def _staff_user(self, email: str) -> tuple[uuid.UUID, str] | None:
        async with self.database.transaction(None) as session:
            row = (await session.execute(text("select id, role from ops_staff_user(:email)"),
                                         {"email": email})).first()
        return (row.id, row.role) if row else None

    async def verify(self, email: str, secret: str) -> Principal | None:
        """The staff member these credentials prove, or None."""
        if not self.enabled or not email or not secret:
            return None
        staff = await self._staff_user(email)
        if staff is None:
            return None
        user_id, role = staff
        if _looks_like_jwt(secret):
            try:
                token = decode_token(secret, self.settings)
            except Unauthorized:
                return None
            return Principal(user_id, role) if (token.user_id, token.role) == staff else None
        password = self.settings.admin_ui_password
        expected = password.get_secret_value() if password else ""
        if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
            return None
        return Principal(user_id, role)

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        email, secret = str(form.get("username", "")).strip(), str(form.get("password", ""))
        client = self.lockout.client(request.scope)
        request.session.clear()
        redis, principal = self.redis(), None
        try:
            wait = await self.lockout.locked_for(redis, email, client)
            if wait is None:  # while locked, the credentials are not even checked
                principal = await self.verify(email, secret)
                record = self.lockout.succeeded if principal else self.lockout.failed
                await record(redis, email, client)
        except (RedisError, OSError):  # no lockout record, no session store: nobody in
            log.warning("admin_login_unavailable")
            return await self._login_page(request, "The admin login is unavailable right "
                                          "now; try again shortly.", 503)
        if wait is not None:
            log.warning("admin_login_locked", seconds=wait)
            minutes = -(-wait // 60)
            return await self._login_page(
                request, "Too many failed logins for this account or from this address: "
                f"try again in {minutes} minute{'s' if minutes > 1 else ''}.", 429)
        if principal is None:
            log.warning("admin_login_refused")
            return False
        now = time.time()  # `since` also marks the login: the session gets a fresh id
        request.session.update({
            "user_id": str(principal.user_id), "role": principal.role, "since": now,
            "exp": int(now) + self.settings.admin_session_max_age_seconds,
        })
        log.info("admin_login", user_id=str(principal.user_id), role=principal.role)
        return True

    async def _login_page(self, request: Request, error: str, status: int) -> Response:
        return await self.templates.TemplateResponse(
            request, "sqladmin/login.html", {"error": error}, status_code=status)

    async def logout(self, request: Request) -> bool:
        # Emptied, the session is deleted from Redis (sessions.py): the cookie is dead.
        request.session.clear()
        return False  # to the login page

    async def authenticate(self, request: Request) -> bool:
        _current.set(None)
        if not self.enabled:
            return False
        data = request.session
        try:
            principal = Principal(uuid.UUID(data["user_id"]), data["role"])
            expired = int(data["exp"]) < time.time()
        except (KeyError, ValueError, TypeError):
            return False
        if expired or principal.role not in STAFF_ROLES:
            request.session.clear()
            return False
        # Still active staff? (a demoted, deactivated or deleted user loses access on their
        # next click)
        async with self.database.transaction(principal) as session:
            row = (await session.execute(select(User.role, User.active)
                                         .where(User.id == principal.user_id))).first()
        if row is None or row.role != principal.role or not row.active:
            request.session.clear()
            return False
        request.state.admin_principal = principal
        _current.set(principal)
        return True


class StaffAuthorization(AuthorizationBackend):
    """Directors do not see the admin-only tables; the views' `can_*` flags do the rest."""

    def has_permission(self, request: Request, identity: str, action: str,
                       obj: Any | None = None) -> bool:
        principal: Principal | None = getattr(request.state, "admin_principal", None)
        if principal is None or principal.role not in STAFF_ROLES:
            return False
        return principal.role == "admin" or identity not in ADMIN_ONLY
