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
  how much of it is still in the window), kept in Redis on Redis's clock (replicas agree).
- Counted without a round trip while a budget is far from spent: each process decides
  from the counts Redis last told it plus its own requests since, and sends its counts to
  Redis in one script call every `FLUSH_SECONDS` (50 ms), reading back everyone's. Once a
  budget is half spent (`LOCAL_SHARE`), each request is checked and counted in Redis
  itself, exactly as one script call. So the limit is exact within one process, and across
  R replicas a budget can be overrun by at most what the other replicas admitted in their
  last 50 ms. The Redis round trip was about a quarter of a simple request's CPU.
- Over a limit: 429 `rate_limited` with `Retry-After` (seconds). Redis down or slow
  (`RATE_LIMIT_REDIS_TIMEOUT_SECONDS`): the request goes through, and the log says so
  (`rate_limit_unavailable`, at most once a minute per process).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
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
LOCAL_SHARE = 0.5  # below this share of a budget, requests are admitted and counted locally
FLUSH_SECONDS = 0.05  # how often a process sends its counts to Redis (while it has any)
_MAX_TALLIES = 100_000  # budgets a process remembers (oldest forgotten first)

# KEYS: m counters to add to (`base:window index`), then n budgets' bases.
# ARGV: the window (s), m, check (1/0), the m amounts, then the n budgets' limits.
# Adds the amounts, then reads each base's current and previous window; with check=1 it
# also admits one more request if every budget has room (and counts it). Replies
# {admitted (1/0), seconds until the tightest budget has room, Redis's seconds, Redis's
# microseconds, then the current and previous count of each base}.
SLIDING_WINDOW = """
local t = redis.call('TIME')
local window = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
local check = ARGV[3] == '1'
for i = 1, m do
  redis.call('INCRBY', KEYS[i], ARGV[3 + i])
  redis.call('EXPIRE', KEYS[i], window * 2)
end
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local index = math.floor(now / window)
local elapsed = now - index * window
local weight = (window - elapsed) / window
local suffix = ':' .. string.format('%d', index)
local previous_suffix = ':' .. string.format('%d', index - 1)
local reply = {0, 0, t[1], t[2]}
local wait = 0
for j = m + 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[j] .. suffix) or '0')
  local previous = tonumber(redis.call('GET', KEYS[j] .. previous_suffix) or '0')
  reply[#reply + 1] = current
  reply[#reply + 1] = previous
  if check then
    local limit = tonumber(ARGV[3 + j])
    if previous * weight + current + 1 > limit then
      local until_room = window - elapsed
      if current + 1 <= limit and previous > 0 then
        until_room = window * (1 - (limit - current - 1) / previous) - elapsed
      end
      wait = math.max(wait, until_room, 1)
    end
  end
end
if not check then return reply end
if wait > 0 then
  reply[2] = math.ceil(wait)
  return reply
end
for j = m + 1, #KEYS do
  redis.call('INCR', KEYS[j] .. suffix)
  redis.call('EXPIRE', KEYS[j] .. suffix, window * 2)
  reply[5 + 2 * (j - m - 1)] = reply[5 + 2 * (j - m - 1)] + 1
end
reply[1] = 1
return reply
"""


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
        self._script: AsyncScript | None = None
        self._complained_at = -math.inf  # monotonic() may be under 60 s after boot
        # What Redis last said of each budget: base -> (window index, current, previous).
        self._tallies: dict[str, tuple[int, int, int]] = {}
        # This process's requests not yet sent to Redis: (base, window index) -> count.
        self._unsent: dict[tuple[str, int], int] = {}
        self._flush_due = False
        self._closed = False
        self._flushing: set[asyncio.Task] = set()
        self._clock_offset = 0.0  # Redis's clock minus ours, from the last reply

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
        now = time.time() + self._clock_offset
        index = int(now // WINDOW_SECONDS)
        weight = (WINDOW_SECONDS - (now - index * WINDOW_SECONDS)) / WINDOW_SECONDS
        for base, limit in limits:
            current, previous = self._known(base, index)
            if previous * weight + current + 1 > limit * LOCAL_SHARE:
                return await self._check_in_redis(redis, limits)
        for base, _ in limits:
            self._unsent[(base, index)] = self._unsent.get((base, index), 0) + 1
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._start_flush, redis)
        return None

    def _known(self, base: str, index: int) -> tuple[int, int]:
        """(current, previous) window counts of a budget as this process knows them."""
        seen_index, current, previous = self._tallies.get(base, (index, 0, 0))
        if seen_index == index - 1:  # Redis last spoke in the previous window
            current, previous = 0, current
        elif seen_index != index:
            current = previous = 0
        return (current + self._unsent.get((base, index), 0),
                previous + self._unsent.get((base, index - 1), 0))

    async def _check_in_redis(self, redis: Redis, limits: list[tuple[str, int]]
                              ) -> int | None:
        bases = [base for base, _ in limits]
        counts = self._take_unsent(bases)
        reply = await self._call(redis, counts, bases, [limit for _, limit in limits])
        if reply is None:
            return None  # failed open
        return None if int(reply[0]) == 1 else int(reply[1])

    def _start_flush(self, redis: Redis) -> None:
        self._flush_due = False
        if self._closed:
            return
        task = asyncio.ensure_future(self.flush(redis))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def close(self, redis: Redis) -> None:
        """At shutdown, before `redis` closes: the last counts sent, no flush after."""
        self._closed = True
        await asyncio.gather(*self._flushing, return_exceptions=True)
        await self.flush(redis)

    async def flush(self, redis: Redis) -> None:
        """Sends this process's unsent counts to Redis now."""
        counts = self._take_unsent(None)
        if counts:
            await self._call(redis, counts, list(dict.fromkeys(b for b, _ in counts)), None)

    def _take_unsent(self, bases: list[str] | None) -> dict[tuple[str, int], int]:
        """Removes and returns the unsent counts (of `bases`, or all)."""
        if bases is None:
            taken, self._unsent = self._unsent, {}
            return taken
        return {key: self._unsent.pop(key) for key in list(self._unsent) if key[0] in bases}

    async def _call(self, redis: Redis, counts: dict[tuple[str, int], int], bases: list[str],
                    limits: list[int] | None) -> list | None:
        """One script call: sends `counts`, reads `bases` back (and with `limits`, checks
        and counts one request). None when Redis did not answer: the counts are kept for
        the next call and the caller fails open."""
        keys = [f"{base}:{index}" for base, index in counts] + bases
        args = [WINDOW_SECONDS, len(counts), 0 if limits is None else 1,
                *counts.values(), *(limits or ())]
        sent_at = time.time()
        try:
            async with asyncio.timeout(self.settings.rate_limit_redis_timeout_seconds):
                reply = await self._sliding_window(redis)(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            # Kept for the next call, except counts of windows that no longer matter.
            oldest = int((time.time() + self._clock_offset) // WINDOW_SECONDS) - 1
            for key, count in counts.items():
                if key[1] >= oldest:
                    self._unsent[key] = self._unsent.get(key, 0) + count
            now = time.monotonic()
            if now - self._complained_at > 60:
                self._complained_at = now
                log.warning("rate_limit_unavailable", error=type(exc).__name__,
                            detail="requests are not rate limited while Redis is unreachable")
            return None
        redis_now = int(reply[2]) + int(reply[3]) / 1_000_000
        self._clock_offset = redis_now - sent_at
        index = int(redis_now // WINDOW_SECONDS)
        for position, base in enumerate(bases):
            self._tallies.pop(base, None)  # re-inserted last: the dict is oldest first
            self._tallies[base] = (index, int(reply[4 + 2 * position]),
                                   int(reply[5 + 2 * position]))
        while len(self._tallies) > _MAX_TALLIES:
            del self._tallies[next(iter(self._tallies))]
        return reply


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
