"""Admin UI (sqladmin) at `/admin`: every table, searchable and filterable.

`security/` holds who gets in and how (login with lockout, server-side sessions in Redis,
the CSRF origin check, security headers, the RLS identity of the views' queries; README
"Admin UI"); `views/` the declarative views, one per table. Only admins and directors log
in; outside development a missing, public or short `ADMIN_SECRET_KEY` disables /admin.

How it reads the database: through its own small pool on the API's role (RLS applies), and
every transaction first sets `app.user_id` / `app.role` to the logged-in user, exactly as
an API request does. So an admin sees what the admin role sees and a director what a
director sees (everything except the inbox, outbox and webhook tables, which are hidden
from directors here as well). The workers' BYPASSRLS engine would have been simpler but
would show a director rows that RLS keeps from them.

What it changes: almost nothing. Sessions, assignments, flags, work items and reviews carry
domain rules and outbound events, so they change only through the API; here they are read
only, like the inbox, the outbox and webhook deliveries and attempts. Users (names,
emails, tiers, capacities) and webhook endpoints (active, description) may be edited.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqladmin import Admin
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse

from app.admin.security import AdminSyncSession, StaffAuthentication, StaffAuthorization, _current
from app.admin.security.guard import AdminGuardMiddleware, RelativeMounting
from app.admin.views import VIEWS
from app.config import Settings
from app.core import telemetry
from app.core.db import Database, make_engine

__all__ = ["VIEWS", "_current", "mount_admin"]


def mount_admin(app: FastAPI, settings: Settings) -> AsyncEngine:
    """Mount the admin UI at /admin with its own small pool (the API role). The caller
    disposes of the returned engine at shutdown; it connects only when first used."""
    engine = make_engine(settings.api_db_url, settings, pool_size=2, max_overflow=3)
    telemetry.instrument_engine(engine, pool="admin")
    view_sessions = async_sessionmaker(engine, sync_session_class=AdminSyncSession,
                                       expire_on_commit=False)
    # The API's Redis client (built in the lifespan), read per request.
    authentication = StaffAuthentication(
        settings, Database(engine, async_sessionmaker(engine, expire_on_commit=False)),
        redis=lambda: app.state.shared.redis)
    admin = Admin(
        RelativeMounting(app),  # type: ignore[arg-type]  # mounts at /admin, relative URLs
        session_maker=view_sessions,
        base_url="/admin",
        title="Mentorship admin",
        middlewares=[Middleware(AdminGuardMiddleware, settings=settings)],  # outermost
        authentication_backend=authentication,
        authorization_backend=StaffAuthorization(),
    )
    authentication.templates = admin.templates  # the lockout message's login page
    for view in VIEWS:
        admin.add_view(view)
    # `/admin` itself: Starlette's slash redirect would build an absolute URL from the Host.
    app.add_route("/admin", _to_admin_index, include_in_schema=False)
    return engine


async def _to_admin_index(request: Request) -> RedirectResponse:
    return RedirectResponse("/admin/", status_code=307)
