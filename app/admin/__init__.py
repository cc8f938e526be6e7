"""Admin UI (sqladmin) at `/admin`: every table, searchable and filterable.

`security/` holds who gets in and how (login, sessions, the RLS identity of the
views' queries); `views/` the declarative views, one per table.

Who gets in: users whose role is `admin` or `director`, and nobody else. The login form
takes the user's email and either
- a JWT issued by the platform for that user (the same token the API accepts), or
- the shared `ADMIN_UI_PASSWORD`, which has no default: unset (as in production unless an
  operator sets it), only the JWT login works.
Outside development a missing, public (development) or short `ADMIN_SECRET_KEY` (which
signs the session cookie) disables the admin UI: it lets nobody in, rather than accept
forgeable cookies; the API still serves.
Every admin request re-reads the user's role, so demoting a user ends their access.

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

from app.admin.security import AdminSyncSession, StaffAuthentication, StaffAuthorization, _current
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
    admin = Admin(
        app,
        session_maker=view_sessions,
        base_url="/admin",
        title="Mentorship admin",
        authentication_backend=StaffAuthentication(
            settings, Database(engine, async_sessionmaker(engine, expire_on_commit=False))),
        authorization_backend=StaffAuthorization(),
    )
    for view in VIEWS:
        admin.add_view(view)
    return engine
