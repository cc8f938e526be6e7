"""Container health probes: `python -m app.core.probe api|worker`, exit 0 when healthy.

Docker runs a probe every few seconds, so a probe imports none of the application: importing
the worker's code (`arq --check app.workers.WorkerSettings`) costs seconds of CPU each time,
and on a loaded machine outlasts the probe's timeout. Settings come from the environment only.

- api: `GET http://127.0.0.1:8000/readyz` answers 200 (Postgres and Redis reachable).
- worker: this host's arq health-check key exists in Redis (the key `arq --check` reads).
  A live worker refreshes it every WORKER_HEALTH_CHECK_SECONDS (20) with that interval + 1 s
  to live, so it is gone about 20 s after the worker died (at once on a graceful stop). The
  key names the host (a container's hostname is its own), so the probe says "the worker in
  this container is alive", and stopping one worker never makes the others look dead.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request

TIMEOUT_SECONDS = 3.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"  # app.config.Settings' defaults
DEFAULT_REDIS_PREFIX = "mentorship:"


def worker_health_key(prefix: str, host: str | None = None) -> str:
    """The workers' health key (app.core.jobqueue.health_check_key): the arq queue's name
    (app.core.redis.queue_name) + ':health-check:' + the host name."""
    return f"{prefix}arq:queue:health-check:{host or socket.gethostname()}"


def api() -> bool:
    with urllib.request.urlopen("http://127.0.0.1:8000/readyz",  # noqa: S310 (fixed URL)
                                timeout=TIMEOUT_SECONDS) as response:
        return response.status == 200


def worker() -> bool:
    import redis  # the sync client only: no asyncio, no app

    client = redis.Redis.from_url(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
                                  socket_timeout=TIMEOUT_SECONDS,
                                  socket_connect_timeout=TIMEOUT_SECONDS)
    try:
        prefix = os.environ.get("REDIS_PREFIX", DEFAULT_REDIS_PREFIX)
        return bool(client.exists(worker_health_key(prefix)))
    finally:
        client.close()


PROBES = {"api": api, "worker": worker}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PROBES:
        print(f"usage: python -m app.core.probe {'|'.join(PROBES)}", file=sys.stderr)
        return 2
    try:
        healthy = PROBES[argv[0]]()
    except Exception as exc:  # unreachable, refused, timed out, 5xx: all mean unhealthy
        print(f"{argv[0]}: {exc}", file=sys.stderr)
        return 1
    print(f"{argv[0]}: {'healthy' if healthy else 'unhealthy'}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
