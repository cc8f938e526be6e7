"""The `mentorship` command: dev, migrate, seed, token, openapi.

Settings come from the environment and `.env` like the service's (DATABASE_URL, REDIS_URL,
JWT_*...). `python -m app.devtools.cli` works too.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from sqlalchemy.engine import make_url

from app.config import InsecureSettings, get_settings
from app.models.user import ROLES

cli = typer.Typer(
    name="mentorship",
    help="Mentorship Coordination Engine: run, migrate, seed, mint tokens, export OpenAPI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)



def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


@cli.callback()
def _fail_closed(context: typer.Context) -> None:
    """Every command but `dev` (which sets ENVIRONMENT=development) refuses insecure keys."""
    if context.invoked_subcommand == "dev" or context.resilient_parsing:
        return
    if context.invoked_subcommand == "token":
        _use_running_dev_stack()
    try:
        get_settings().require_secure("mentorship")
    except InsecureSettings as exc:
        _fail(str(exc))


def _use_running_dev_stack() -> None:
    """Without a DATABASE_URL of its own (environment or .env), `token` uses the servers and
    development settings of a `mentorship dev` started in this directory and still running
    (app/devtools/stackfile.py)."""
    from app.devtools.stackfile import running_stack

    if "database_url" in get_settings().model_fields_set:
        return
    environment = running_stack()
    if environment is None:
        return
    os.environ.update(environment)
    get_settings.cache_clear()
    typer.echo("using the running `mentorship dev` stack (.data/dev-stack.json)", err=True)


@cli.command()
def dev(
    port: Annotated[int, typer.Option(help="The API's port.")] = 8000,
    host: Annotated[str, typer.Option(help="The API's interface.")] = "127.0.0.1",
    data_dir: Annotated[Path, typer.Option(
        help="Where embedded PostgreSQL and Redis keep their data.")] = Path(".data"),
    mentors: Annotated[int, typer.Option(help="Demo mentors (first run only).")] = 20,
    mentees: Annotated[int, typer.Option(help="Demo mentees (first run only).")] = 300,
    seed: Annotated[int, typer.Option(help="Demo data seed.")] = 1,
    workers: Annotated[int, typer.Option(help="arq worker processes.")] = 1,
    token_ttl_hours: Annotated[float, typer.Option(help="Lifetime of the demo tokens.")] = 24,
) -> None:
    """Run the API and a worker, on embedded servers unless DATABASE_URL / REDIS_URL are set;
    migrate, seed a demo programme into an empty database, print demo tokens. Ctrl-C stops
    everything."""
    from app.devtools.dev import DevOptions, run

    raise typer.Exit(code=run(DevOptions(
        host=host, port=port, data_dir=data_dir, mentors=mentors, mentees=mentees, seed=seed,
        token_ttl_hours=token_ttl_hours, workers=workers)))


@cli.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create the database if missing and bring its schema to the latest revision (alembic
    upgrade head), with DATABASE_URL."""
    from app.devtools.migrate import DatabaseUnavailable
    from app.devtools.migrate import migrate as run_migrate

    database_url = get_settings().database_url
    try:
        if run_migrate(database_url, revision):
            typer.echo(f"created database {make_url(database_url).database}", err=True)
    except DatabaseUnavailable as exc:
        _fail(str(exc))


@cli.command("seed")
def seed_command(
    mentors: Annotated[int, typer.Option(min=0)] = 20,
    mentees: Annotated[int, typer.Option(min=0)] = 300,
    seed: Annotated[int, typer.Option(help="Same seed (and --now): same data.")] = 1,
    work_items_per_mentee: Annotated[int, typer.Option(min=0)] = 10,
    sessions_per_mentor: Annotated[int, typer.Option(min=0)] = 100,
    assigned_fraction: Annotated[float, typer.Option(
        min=0, max=1, help="Share of mentees given a mentor; the rest wait for the matcher."
    )] = 0.85,
    now: Annotated[str | None, typer.Option(
        help="Reference time (ISO 8601) instead of the current time, for reproducible data."
    )] = None,
    reset: Annotated[bool, typer.Option(
        "--reset", help="Empty every table first (TRUNCATE, with the migration account)."
    )] = False,
) -> None:
    """Fill an empty database with a realistic programme, as the system (workers' role).
    The defaults at --mentors 1000 --mentees 20000 give ~200K work items, 100K sessions."""
    from app.devtools.migrate import DatabaseUnavailable, database_errors
    from app.devtools.seed import DatabaseNotEmpty
    from app.devtools.seed import seed as run_seed

    reference = None
    if now:
        reference = datetime.fromisoformat(now)
        if reference.tzinfo is None:
            reference = reference.replace(tzinfo=UTC)
    settings = get_settings()
    try:
        with database_errors(settings.database_url):
            result = asyncio.run(run_seed(
                settings, mentors=mentors, mentees=mentees, seed=seed,
                work_items_per_mentee=work_items_per_mentee,
                sessions_per_mentor=sessions_per_mentor, assigned_fraction=assigned_fraction,
                now=reference, reset=reset))
    except (DatabaseNotEmpty, DatabaseUnavailable) as exc:
        _fail(str(exc))
    except asyncpg.UndefinedTableError:
        _fail("the database has no schema yet: run `mentorship migrate` first")
    for table, count in result.counts.items():
        typer.echo(f"{table:<20} {count:>9,}")
    typer.echo(f"{'total rows':<20} {sum(result.counts.values()):>9,}")
    typer.echo(f"seeded in {result.seconds:.1f} s (generating {result.generate_seconds:.1f} s, "
               f"overlapped with loading; committed at {result.load_seconds:.1f} s; then ANALYZE)")


@cli.command()
def token(
    user_id: Annotated[uuid.UUID | None, typer.Option(help="The token's subject.")] = None,
    role: Annotated[str | None, typer.Option(
        help=f"One of {', '.join(ROLES)} (default with --email: the user's role).")] = None,
    email: Annotated[str | None, typer.Option(
        help="Look the user up by email in the database instead of --user-id.")] = None,
    ttl_hours: Annotated[float, typer.Option(min=0.01, help="Lifetime.")] = 12,
) -> None:
    """Print a JWT signed with the configured key (JWT_SECRET, or JWT_PRIVATE_KEY for RS256).

    Tokens are honoured only for an active user with that role in the database: with
    `--role service --user-id UUID` the service account is created if it does not exist."""
    from app.core.auth import mint_token

    settings = get_settings()
    if (user_id is None) == (email is None):
        _fail("give exactly one of --user-id or --email")
    if email is not None:
        from app.devtools.seed import user_by_email

        user = asyncio.run(user_by_email(settings, email))
        if user is None:
            _fail(f"no user with email {email}")
        user_id, role = user.id, role or user.role
    if role not in ROLES:
        _fail(f"--role must be one of {', '.join(ROLES)}")
    if role == "service" and email is None:
        from app.devtools.seed import ensure_service_account

        try:
            asyncio.run(ensure_service_account(settings, user_id))
        except (OSError, asyncpg.PostgresError) as exc:
            _fail(f"cannot create the service account: {exc}")
        except ValueError as exc:
            _fail(str(exc))
    try:
        typer.echo(mint_token(user_id, role, settings, ttl=timedelta(hours=ttl_hours)))
    except RuntimeError as exc:
        _fail(str(exc))


@cli.command()
def openapi(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write (default: standard output).")] = None,
) -> None:
    """Write the OpenAPI schema as JSON."""
    from app.main import create_app

    document = json.dumps(create_app(get_settings()).openapi(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(document)
    else:
        output.write_text(document)
        typer.echo(f"wrote {output}", err=True)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
