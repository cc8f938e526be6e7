"""`mentorship dev`: everything needed to try the service, in one foreground command.

Without DATABASE_URL / REDIS_URL (environment or .env) it starts an embedded PostgreSQL and
an embedded Redis under the data directory; then it creates the database if missing,
migrates, seeds a demo programme when the database is empty, computes the programme
metrics once, prints the URLs and demo tokens, and runs the API (uvicorn) and the arq
workers as child processes (app/devtools/supervise.py: restarted when they die) until
Ctrl-C or SIGTERM. Shutdown stops the children and then the embedded servers, so nothing is
left running.

The API's port is bound here, first, and handed to uvicorn (`--fd`): a port already in use
is reported before anything starts, and nothing but our API can answer the readiness probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from app.config import DEV_JWT_SECRET, Settings, get_settings
from app.core.auth import mint_token
from app.devtools import stackfile
from app.devtools.migrate import (
    DatabaseUnavailable,
    database_errors,
    ensure_database,
    parse_database_url,
    upgrade,
)
from app.devtools.supervise import GaveUp, Supervisor

DEV_DATABASE = "mentorship"
READY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class DevOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".data")
    mentors: int = 20
    mentees: int = 300
    seed: int = 1
    token_ttl_hours: float = 24.0
    workers: int = 1


class _Stop(Exception):
    """Raised by the signal handlers: leave the wait loop and shut down."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def _say(message: str = "") -> None:
    print(message, flush=True)


def _describe_postgres(url: str) -> str:
    parsed = make_url(url)
    host = parsed.query.get("host")
    if host and not parsed.host:  # unix socket (the embedded server)
        return f"database {parsed.database} on the socket in {host}"
    return parsed.set(drivername="postgresql").render_as_string(hide_password=True)


class PortInUse(Exception):
    pass


def bind_port(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound here so that a port in use is reported before
    anything starts (uvicorn receives it with `--fd`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a restart may bind while old connections sit in TIME_WAIT; a port
    # another server listens on is still refused.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortInUse(
            f"cannot listen on {host}:{port} ({exc.strerror}): another server (another "
            "`make dev`?) may be using it; choose another port: `make dev PORT=9000` "
            "or `mentorship dev --port 9000`") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def _prepare_data(settings: Settings, options: DevOptions):
    from app.devtools.seed import demo_users, is_empty, plain_dsn, refresh_metrics, seed

    connection = await asyncpg.connect(plain_dsn(settings.worker_db_url))
    try:
        empty = await is_empty(connection)
    finally:
        await connection.close()
    if empty:
        result = await seed(settings, mentors=options.mentors, mentees=options.mentees,
                            seed=options.seed)
        _say(f"Seeded a demo programme in {result.seconds:.1f} s: "
             + ", ".join(f"{n} {t}" for t, n in result.counts.items()))
    else:
        _say("The database already has data: not seeding.")
        await refresh_metrics(settings)  # the director's first look is current
    return await demo_users(settings)


def _wait_ready(url: str, supervisor: Supervisor) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        supervisor.check()  # restarts a child that died while starting; raises GaveUp
        if supervisor.children["api"].running:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    return True
        time.sleep(0.3)
    return False


def run(options: DevOptions) -> int:
    """Run the development stack in the foreground; returns the exit status."""
    # From here on SIGINT and SIGTERM unwind through the `finally` below.
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    from app.devtools.embedded import start_postgres, start_redis, stop_postgres, stop_redis

    # The development stack accepts the public development keys (and says so in the
    # banner); the children inherit the setting. Outside it every process fails closed.
    os.environ["ENVIRONMENT"] = "development"
    get_settings.cache_clear()
    settings = get_settings()
    embedded_postgres = "database_url" not in settings.model_fields_set
    embedded_redis = "redis_url" not in settings.model_fields_set
    data_dir = options.data_dir.expanduser().resolve()
    supervisor = Supervisor(_say)
    status = 0
    with contextlib.ExitStack() as servers:  # embedded servers stop last, in reverse order
        try:
            if not embedded_postgres:
                parse_database_url(settings.database_url)
            listener = servers.enter_context(bind_port(options.host, options.port))
            overrides: dict[str, str] = {}
            if embedded_postgres:
                _say(f"DATABASE_URL not set: starting embedded PostgreSQL in {data_dir}/postgres")
                server_url = start_postgres(data_dir / "postgres", cleanup_mode=None)
                servers.callback(_announce_stop, "PostgreSQL", stop_postgres,
                                 data_dir / "postgres")
                overrides["DATABASE_URL"] = make_url(server_url).set(
                    database=DEV_DATABASE).render_as_string(hide_password=False)
            if embedded_redis:
                _say(f"REDIS_URL not set: starting embedded Redis in {data_dir}/redis")
                handle, redis_url = start_redis(data_dir / "redis")
                servers.callback(_announce_stop, "Redis", stop_redis, handle)
                overrides["REDIS_URL"] = redis_url
            os.environ.update(overrides)
            get_settings.cache_clear()
            settings = get_settings()

            if ensure_database(settings.database_url):
                _say(f"Created database {make_url(settings.database_url).database}")
            _say("Migrating to the latest schema (alembic upgrade head)")
            with database_errors(settings.database_url):
                upgrade(settings.database_url)

            # The children start (imports take seconds) while the demo data is seeded.
            env = {**os.environ, **overrides}
            base = f"http://{options.host}:{options.port}"
            fd = listener.fileno()
            supervisor.spawn("api", [
                sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app",
                "--fd", str(fd)], env, pass_fds=(fd,))
            for n in range(options.workers):
                # Each worker serves its job series (and one of them the outbox and
                # programme metrics) on a port of its own: the API's port + 1, + 2...
                supervisor.spawn(f"worker-{n + 1}", [
                    sys.executable, "-m", "arq", "app.workers.WorkerSettings"],
                    {**env, "WORKER_METRICS_PORT": str(worker_metrics_port(options, n))})
            with database_errors(settings.database_url):
                demo = asyncio.run(_prepare_data(settings, options))
            # `mentorship token` in another terminal finds these servers and settings.
            stackfile.write({"ENVIRONMENT": "development", "DATABASE_URL": settings.database_url,
                             "REDIS_URL": settings.redis_url})
            servers.callback(stackfile.remove)
            ready = _wait_ready(base, supervisor)
            _banner(settings, options, base, demo, ready)
            status = 0 if ready else 1
            while ready:
                supervisor.check()
                time.sleep(0.3)
        except (PortInUse, DatabaseUnavailable, GaveUp) as exc:
            _say(f"error: {exc}")
            status = 1
        except (_Stop, KeyboardInterrupt) as stop:
            _say(f"\nStopping ({stop or 'interrupted'})")
        finally:
            # A second Ctrl-C must not cut the shutdown short.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            supervisor.stop()
    _say("Stopped.")
    return status


def _announce_stop(name: str, stop, *args) -> None:
    _say(f"  stopping embedded {name}")
    try:
        stop(*args)
    except Exception as exc:  # keep stopping the rest
        _say(f"  could not stop embedded {name}: {exc}")


def worker_metrics_port(options: DevOptions, n: int) -> int:
    return options.port + 1 + n


def _banner(settings: Settings, options: DevOptions, base: str, demo: dict, ready: bool) -> None:
    ttl = timedelta(hours=options.token_ttl_hours)
    _say("")
    _say("Mentorship Coordination Engine (development)")
    _say(f"  API       {base}" + ("" if ready else "   (NOT READY: see the logs above)"))
    _say(f"  Docs      {base}/docs  (and {base}/redoc)")
    _say(f"  Admin     {base}/admin  (username: the director's or admin's email below; "
         "password: their token)")
    _say(f"  Postgres  {_describe_postgres(settings.database_url)}")
    _say(f"  Redis     {settings.redis_url}")
    _say(f"  Metrics   {base}/metrics (API, programme metrics), " + ", ".join(
        f"http://{options.host}:{worker_metrics_port(options, n)}/metrics"
        for n in range(options.workers)) + " (workers: jobs)")
    if settings.jwt_secret == DEV_JWT_SECRET:
        _say("  Keys      the public development JWT secret (ENVIRONMENT=development only)")
    _say("")
    _say(f"Demo tokens (valid {options.token_ttl_hours:g} h):")
    for role in ("mentor", "mentee", "director", "admin", "service"):
        user = demo.get(role)
        if user is None:
            continue
        token = mint_token(user.id, role, settings, ttl=ttl)
        _say(f"  {role:<9} {user.name} <{user.email}>")
        _say(f"            export {role.upper()}_TOKEN={token}")
    _say("")
    _say("Try:")
    _say(f'  curl -H "Authorization: Bearer $MENTOR_TOKEN" {base}/api/v1/mentor/dashboard')
    _say(f'  curl -N -H "Authorization: Bearer $MENTOR_TOKEN" '
         f"{base}/api/v1/mentor/dashboard/stream")
    _say("Press Ctrl-C to stop.")
