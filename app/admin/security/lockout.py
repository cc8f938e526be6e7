"""Admin login lockout: too many failed logins lock the account and the client for a while.

Counted in Redis (so every replica agrees), per account (the email as typed, lower-cased
and hashed: unknown emails count too, so the answer never tells which accounts exist) and
per client address (the peer, or behind `TRUSTED_PROXIES` the forwarded client). The
`ADMIN_LOGIN_MAX_FAILURES`-th failure for an account, or the
`ADMIN_LOGIN_MAX_FAILURES_PER_CLIENT`-th from one client, within `ADMIN_LOCKOUT_SECONDS`
locks it for `ADMIN_LOCKOUT_SECONDS` from then; while locked, even the right password is
refused (and not counted), with a message saying how long to wait. A successful login
clears its account's count. The lock lifts by itself: every counter has a TTL.
"""

from __future__ import annotations

import hashlib

from redis.asyncio import Redis
from starlette.types import Scope

from app.config import Settings
from app.core.ratelimit import RateLimiter

# KEYS: the counters; ARGV[1]: the lock duration, ARGV[2..]: each counter's maximum.
# Atomic, so a counter never lives without its TTL; the TTL restarts when a counter
# reaches its maximum, so the lock lasts the full duration from the failure that set it.
COUNT_FAILURE = """
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 or n == tonumber(ARGV[i + 1]) then redis.call('EXPIRE', key, ARGV[1]) end
end
return 1
"""


class LoginLockout:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients = RateLimiter(settings)  # the one reading of X-Forwarded-For

    def client(self, scope: Scope) -> str:
        peer = scope.get("client")
        return self._clients.client_ip(scope) or (peer[0] if peer else "unknown")

    def _keys(self, email: str, client: str) -> list[tuple[str, int]]:
        prefix, settings = f"{self.settings.redis_prefix}admin:login-failures", self.settings
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return [(f"{prefix}:account:{account}", settings.admin_login_max_failures),
                (f"{prefix}:client:{client}", settings.admin_login_max_failures_per_client)]

    async def locked_for(self, redis: Redis, email: str, client: str) -> int | None:
        """Seconds until the account or the client may try again, or None (not locked)."""
        wait = 0
        for key, maximum in self._keys(email, client):
            count = await redis.get(key)
            if count is not None and int(count) >= maximum:
                wait = max(wait, await redis.ttl(key), 1)
        return wait or None

    async def failed(self, redis: Redis, email: str, client: str) -> None:
        keys = self._keys(email, client)
        await redis.eval(COUNT_FAILURE, len(keys), *(k for k, _ in keys),
                         self.settings.admin_lockout_seconds, *(m for _, m in keys))

    async def succeeded(self, redis: Redis, email: str, client: str) -> None:
        await redis.delete(self._keys(email, client)[0][0])
