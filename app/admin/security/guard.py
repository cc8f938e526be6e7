"""Every /admin request passes here first: the cross-origin check, no Host reflection, and
the security headers on every response.

- CSRF: a state-changing request (any method but GET, HEAD, OPTIONS: the login form,
  edits, deletes) must come from the admin UI's own origin, shown by `Origin` or, when a
  browser sends none, `Referer`; neither, or another origin (`null` included): 403. Own
  origin: `PUBLIC_BASE_URL`'s when set (scheme, host and port must match), else the
  request's own `Host` (a browser cannot forge the Host of the site it posts to). This
  beside the `SameSite=Strict` cookie: two independent locks.
- No Host reflection: sqladmin builds every link and redirect with `request.url_for`, from
  the request's Host. The admin app is mounted by `RelativeMount`, whose URLs carry no
  scheme of their own, and sees no `Host` (nor server address): every link and `Location`
  comes out relative (`/admin/...`), so a forged Host never reaches a redirect or a page.
- Headers: a CSP that sqladmin's pages work under (scripts, styles, fonts and images from
  /admin/statics; no inline script: sqladmin's only one renders with flash messages, which
  these views never send), no framing, `nosniff`, `Referrer-Policy: same-origin` (the
  Referer fallback above keeps working) and `Cache-Control: no-store` on the pages (they
  hold personal data), not on the static files.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import structlog
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, URLPath
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

log = structlog.get_logger("app.admin")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def _origin(url: str) -> tuple[str, str] | None:
    """(scheme, host[:port]) of an absolute http(s) URL, lower-cased; else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.scheme.lower(), parts.netloc.lower()


class AdminGuardMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        base = settings.public_base_url
        self.own_origin = _origin(base) if base else None

    def _same_origin(self, headers: dict[bytes, bytes]) -> bool:
        claimed = headers.get(b"origin") or headers.get(b"referer")
        source = _origin(claimed.decode("latin-1")) if claimed else None
        if source is None:
            return False
        if self.own_origin is not None:
            return source == self.own_origin
        host = headers.get(b"host", b"").decode("latin-1").lower()
        return bool(host) and source[1] == host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        static = scope["path"].startswith(f"{scope.get('root_path', '')}/statics/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    out[name] = value
                if not static:
                    out["cache-control"] = "no-store"
            await send(message)

        if scope["method"] not in SAFE_METHODS and not self._same_origin(headers):
            log.warning("admin_cross_origin_refused", method=scope["method"],
                        path=scope["path"])
            response = PlainTextResponse("Cross-origin request refused.", status_code=403)
            await response(scope, receive, send_with_headers)
            return
        # In place: the outer middlewares read the matched route from this same scope.
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"host"]
        scope["server"] = None
        await self.app(scope, receive, send_with_headers)


class RelativeMount(Mount):
    """The /admin mount: its URLs take scheme and host from the request's base URL, which
    inside the admin app (no Host, see above) has neither, so they come out relative."""

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        return URLPath(str(super().url_path_for(name, **path_params)), protocol="")


class RelativeMounting:
    """What sqladmin's `Admin` takes as its app: it only calls `mount`."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def mount(self, path: str, app: ASGIApp, name: str | None = None) -> None:
        self.app.router.routes.append(RelativeMount(path, app=app, name=name))
