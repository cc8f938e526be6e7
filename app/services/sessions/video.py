"""Video links behind one interface.

- `JitsiProvider` (default, no credentials): an unguessable room per session,
  `<video_base_url>/mentorship-<128 random bits>`.
- `ZoomProvider` (when `ZOOM_ACCOUNT_ID`, `ZOOM_CLIENT_ID` and `ZOOM_CLIENT_SECRET` are set):
  Zoom's server-to-server OAuth app. An access token from the `account_credentials` grant is
  cached until shortly before it expires (one fetch at a time, however many bookings run
  at once) and used to create, move and delete meetings.

Any failure of the provider (network error, timeout, 4xx/5xx, unusable answer) raises
`VideoProviderUnavailable` (503 `video_provider_unavailable`); the booking service calls the
provider inside the request's transaction, so the booking then rolls back entirely.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import structlog

from app.config import Settings
from app.core.errors import ServiceUnavailable

log = structlog.get_logger("app.video")

# Refresh a cached Zoom token this long before Zoom says it expires.
TOKEN_EXPIRY_MARGIN_SECONDS = 60


class VideoProviderUnavailable(ServiceUnavailable):
    code, title = "video_provider_unavailable", "The video provider is unavailable"


@dataclass(frozen=True, slots=True)
class VideoMeeting:
    url: str
    external_id: str | None = None  # the provider's meeting id, when it keeps state


class VideoProvider(Protocol):
    name: str
    remote: bool  # True when creating a meeting changes state elsewhere (an API call)

    async def create_meeting(self, *, session_id: uuid.UUID, starts_at: datetime,
                             duration_minutes: int, topic: str,
                             agenda: str | None) -> VideoMeeting: ...

    async def update_meeting(self, *, external_id: str | None, starts_at: datetime,
                             duration_minutes: int) -> None: ...

    async def delete_meeting(self, *, external_id: str | None) -> None: ...


class JitsiProvider:
    """Rooms exist as soon as someone opens the link: nothing to create, move or delete."""

    name = "jitsi"
    remote = False

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    async def create_meeting(self, *, session_id: uuid.UUID, starts_at: datetime,
                             duration_minutes: int, topic: str,
                             agenda: str | None) -> VideoMeeting:
        # The room name is the only secret: 16 random bytes, not derived from the session id.
        return VideoMeeting(url=f"{self.base_url}/mentorship-{secrets.token_urlsafe(16)}")

    async def update_meeting(self, *, external_id: str | None, starts_at: datetime,
                             duration_minutes: int) -> None:
        return None

    async def delete_meeting(self, *, external_id: str | None) -> None:
        return None


def _zoom_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ZoomProvider:
    name = "zoom"
    remote = True

    def __init__(self, *, account_id: str, client_id: str, client_secret: str,
                 oauth_url: str, api_base_url: str, timeout: float) -> None:
        self.account_id = account_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.oauth_url = oauth_url
        self.api_base_url = api_base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._token: str | None = None
        self._token_expires = 0.0  # time.monotonic() deadline
        self._token_lock = asyncio.Lock()

    async def _access_token(self, client: httpx.AsyncClient, *, stale: str | None = None) -> str:
        """The cached token, fetched when missing, expiring, or equal to `stale` (rejected
        by Zoom). The lock makes concurrent callers share one fetch."""
        async with self._token_lock:
            if (self._token and self._token != stale
                    and time.monotonic() < self._token_expires):
                return self._token
            response = await client.post(
                self.oauth_url,
                params={"grant_type": "account_credentials", "account_id": self.account_id},
                auth=(self.client_id, self.client_secret),
            )
            if response.status_code != 200:
                raise VideoProviderUnavailable(
                    f"Zoom refused the access token request ({response.status_code})")
            body = response.json()
            token, expires_in = body.get("access_token"), body.get("expires_in")
            if not isinstance(token, str) or not isinstance(expires_in, int | float):
                raise VideoProviderUnavailable("Zoom sent an unusable access token answer")
            self._token = token
            self._token_expires = time.monotonic() + expires_in - TOKEN_EXPIRY_MARGIN_SECONDS
            return token

    async def _call(self, method: str, path: str, json: dict[str, Any] | None = None,
                    ok: tuple[int, ...] = (200, 201, 204)) -> httpx.Response:
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
                token = await self._access_token(client)
                response = await client.request(method, f"{self.api_base_url}{path}", json=json,
                                                 headers={"Authorization": f"Bearer {token}"})
                if response.status_code == 401:  # revoked or expired early: fetch a new one once
                    token = await self._access_token(client, stale=token)
                    response = await client.request(
                        method, f"{self.api_base_url}{path}", json=json,
                        headers={"Authorization": f"Bearer {token}"})
        except (httpx.HTTPError, ValueError) as exc:  # ValueError: a body that is not JSON
            log.warning("zoom_unreachable", error=repr(exc), path=path)
            raise VideoProviderUnavailable("The video provider could not be reached") from exc
        if response.status_code not in ok:
            log.warning("zoom_error", status=response.status_code, path=path)
            raise VideoProviderUnavailable(
                f"The video provider answered {response.status_code}")
        return response

    async def create_meeting(self, *, session_id: uuid.UUID, starts_at: datetime,
                             duration_minutes: int, topic: str,
                             agenda: str | None) -> VideoMeeting:
        response = await self._call("POST", "/users/me/meetings", json={
            "topic": topic[:200],
            "type": 2,  # a scheduled meeting
            "start_time": _zoom_time(starts_at),
            "timezone": "UTC",
            "duration": duration_minutes,
            "agenda": (agenda or "")[:2000],
            "settings": {"join_before_host": False, "waiting_room": True},
        })
        try:
            body = response.json()
            url, meeting_id = body["join_url"], body["id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise VideoProviderUnavailable("Zoom sent an unusable meeting answer") from exc
        return VideoMeeting(url=str(url), external_id=str(meeting_id))

    async def update_meeting(self, *, external_id: str | None, starts_at: datetime,
                             duration_minutes: int) -> None:
        if external_id:
            await self._call("PATCH", f"/meetings/{external_id}", json={
                "start_time": _zoom_time(starts_at), "timezone": "UTC",
                "duration": duration_minutes,
            })

    async def delete_meeting(self, *, external_id: str | None) -> None:
        if external_id:
            await self._call("DELETE", f"/meetings/{external_id}", ok=(200, 204, 404))


def make_video_provider(settings: Settings) -> VideoProvider:
    if settings.zoom_account_id and settings.zoom_client_id and settings.zoom_client_secret:
        return ZoomProvider(
            account_id=settings.zoom_account_id,
            client_id=settings.zoom_client_id,
            client_secret=settings.zoom_client_secret,
            oauth_url=settings.zoom_oauth_url,
            api_base_url=settings.zoom_api_base_url,
            timeout=settings.video_timeout_seconds,
        )
    return JitsiProvider(settings.video_base_url)
