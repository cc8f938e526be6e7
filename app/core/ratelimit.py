"""Request rate limits in Redis: per token subject, and per client IP behind a trusted proxy.

- Per token: `RATE_LIMIT_PER_MINUTE` (default 600) for people, `RATE_LIMIT_SERVICE_PER_MINUTE`
  (60000) for role `service`, counted per token subject (`sub`), so every replica counts
  the same budget. Only a token whose signature verifies counts (a forged one cannot spend
  someone else's budget); the route still answers 401 for anything else.
- Per client IP (`RATE_LIMIT_IP_PER_MINUTE`, 1200): only when `TRUSTED_PROXIES` lists the
  proxies in front of the service. The client is then the right-most `X-Forwarded-For`
  address that is not a trusted proxy; without a trusted proxy every client may share the
  load balancer's address, so no per-IP limit applies.
- A sliding window counter (this minute's count plus the previous minute's, weighted by
  how much of it is still in the window), all limits of a request checked and counted in
  one Lua script: one Redis round trip, on Redis's clock (replicas agree).
- Over a limit: 429 `rate_limited` with `Retry-After` (seconds). Redis down or slow
  (`RATE_LIMIT_REDIS_TIMEOUT_SECONDS`): the request goes through, and the log says so
  (`rate_limit_unavailable`, at most once a minute per process).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from urllib.parse import parse_qs

import structlog
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from app.config import Settings
from app.core.auth import Principal, decode_token
from app.core.errors import DomainError, TooManyRequests, problem

log = structlog.get_logger("app.ratelimit")

WINDOW_SECONDS = 60
EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})

# KEYS: one base key per limit. ARGV: the window (s), then one limit per key.
# Returns {1} when every limit has room (and counts the request against each), else
# {0, seconds until the tightest one has room}.
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local index = math.floor(now / window)
local elapsed = now - index * window
local weight = (window - elapsed) / window
local wait = 0
local current_keys = {}
for i, base in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 1])
  local key = base .. ':' .. string.format('%d', index)
  current_keys[i] = key
  local current = tonumber(redis.call('GET', key) or '0')
  local previous = tonumber(redis.call('GET', base .. ':' .. string.format('%d', index - 1))
                            or '0')
  if previous * weight + current + 1 > limit then
    local until_room = window - elapsed
    if current + 1 <= limit and previous > 0 then
      until_room = window * (1 - (limit - current - 1) / previous) - elapsed
    end
    wait = math.max(wait, until_room, 1)
  end
end
if wait > 0 then return {0, math.ceil(wait)} end
for _, key in ipairs(current_keys) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, window * 2)
end
return {1}
"""


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
        self._script: AsyncScript | None = None
        self._complained_at = 0.0

    def limits_for(self, principal: Principal | None, client_ip: str | None
                   ) -> list[tuple[str, int]]:
        settings, prefix = self.settings, self.settings.redis_prefix
        limits = []
        if principal is not None:
            per_minute = (settings.rate_limit_service_per_minute if principal.role == "service"
                          else settings.rate_limit_per_minute)
            if per_minute > 0:
                limits.append((f"{prefix}ratelimit:sub:{principal.user_id}", per_minute))
        if client_ip is not None and settings.rate_limit_ip_per_minute > 0:
            limits.append((f"{prefix}ratelimit:ip:{client_ip}", settings.rate_limit_ip_per_minute))
        return limits

    def client_ip(self, scope: Scope) -> str | None:
        """The client's address when the service is behind a trusted proxy, else None."""
        if not self.trusted or not scope.get("client"):
            return None
        peer = scope["client"][0]
        if not self._is_trusted(peer):
            return peer  # reached directly (or the server already resolved the proxy hop)
        forwarded = [h for k, h in scope["headers"] if k == b"x-forwarded-for"]
        hops = [hop.strip() for value in forwarded for hop in value.decode("latin-1").split(",")]
        for hop in reversed(hops):
            if hop and not self._is_trusted(hop):
                return hop
        return peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def _sliding_window(self, redis: Redis) -> AsyncScript:
        """The script by its SHA (EVALSHA: the server keeps it; sent again only after a
        NOSCRIPT, e.g. a Redis restart), not its 1.3 KB of text with every request."""
        if self._script is None or self._script.registered_client is not redis:
            self._script = redis.register_script(SLIDING_WINDOW)
        return self._script

    async def retry_after(self, redis: Redis, limits: list[tuple[str, int]]) -> int | None:
        """Seconds to wait if a limit is reached (the request is not counted), else None
        (counted). Fails open."""
        keys = [key for key, _ in limits]
        args = [WINDOW_SECONDS, *(limit for _, limit in limits)]
        try:
            async with asyncio.timeout(self.settings.rate_limit_redis_timeout_seconds):
                reply = await self._sliding_window(redis)(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            now = time.monotonic()
            if now - self._complained_at > 60:
                self._complained_at = now
                log.warning("rate_limit_unavailable", error=type(exc).__name__,
                            detail="requests are not rate limited while Redis is unreachable")
            return None
        return None if int(reply[0]) == 1 else int(reply[1])


def bearer_token(scope: Scope) -> str | None:
    """The token of `Authorization: Bearer` or, failing that, `?access_token=`."""
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    if b"access_token" in scope.get("query_string", b""):
        values = parse_qs(scope["query_string"].decode("latin-1")).get("access_token")
        return values[0] if values else None
    return None


def verified_principal(scope: Scope, settings: Settings) -> Principal | None:
    """The principal of the request's bearer token when its signature and claims verify
    (left in the request state, so the route's auth dependency does not verify it again),
    else None: only a verified token counts against a budget; the route answers 401."""
    if (token := bearer_token(scope)) is None:
        return None
    try:
        principal = decode_token(token, settings)
    except DomainError:
        return None
    scope.setdefault("state", {})["verified_token"] = (token, principal)
    return principal


async def refuse(scope: Scope, receive: Receive, send: Send, wait: int) -> None:
    response = problem(429, TooManyRequests.code, TooManyRequests.title,
                       f"Too many requests; retry in {wait} s.", Request(scope),
                       headers={"Retry-After": str(wait)})
    await response(scope, receive, send)
