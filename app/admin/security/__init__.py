"""The admin UI's security part: login, sessions, the RLS identity of its queries."""

from app.admin.security.auth import (
    ADMIN_ONLY,
    STAFF_ROLES,
    AdminSyncSession,
    StaffAuthentication,
    StaffAuthorization,
    _current,
)

__all__ = ["ADMIN_ONLY", "STAFF_ROLES", "AdminSyncSession", "StaffAuthentication",
           "StaffAuthorization", "_current"]
