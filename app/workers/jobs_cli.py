"""`python -m app.workers.jobs_cli`: read the job queue, re-run a job, list results.

Works on the deployment of the environment's settings (REDIS_URL, REDIS_PREFIX): every
name is read and written under the prefix, as the workers do.

    python -m app.workers.jobs_cli queue                  # queued and deferred jobs
    python -m app.workers.jobs_cli results [--failed]     # kept results (newest last)
    python -m app.workers.jobs_cli run cron:prioritize_work_queue
    python -m app.workers.jobs_cli run check_mentor_capacity --arg <mentor id>
    python -m app.workers.jobs_cli run auto_match_mentors --kw mentee_ids='["..."]'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from app.config import get_settings
from app.core.jobqueue import arq_client
from app.workers import CRON_JOBS, FUNCTIONS


def _job_names() -> list[str]:
    return sorted({job.name for job in FUNCTIONS} | {job.name for job in CRON_JOBS})


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _when(ms: float | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()


async def _queue(client) -> int:
    for job in await client.queued_jobs():
        print(f"{job.job_id}\t{job.function}\tdue {_when(job.score)}\ttry {job.job_try or 1}"
              f"\targs={job.args} kwargs={job.kwargs}")
    return 0


async def _results(client, failed_only: bool) -> int:
    for result in await client.all_job_results():
        if failed_only and result.success:
            continue
        state = "ok" if result.success else "FAILED"
        print(f"{result.job_id}\t{result.function}\t{state}\tfinished "
              f"{result.finish_time.isoformat()}\ttry {result.job_try}\t{result.result!r:.200}")
    return 0


async def _run(client, name: str, args: list[str], kwargs: list[str], job_id: str) -> int:
    pairs = dict(item.split("=", 1) for item in kwargs)
    job = await client.enqueue_job(name, *map(_value, args), _job_id=job_id,
                                   **{key: _value(value) for key, value in pairs.items()})
    if job is None:
        print(f"not enqueued: job {job_id} is queued, running, or its result is still kept")
        return 1
    print(f"enqueued {name} as job {job.job_id} (a worker runs it when free)")
    return 0


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.workers.jobs_cli",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("queue", help="list queued and deferred jobs")
    results = commands.add_parser("results", help="list kept job results")
    results.add_argument("--failed", action="store_true", help="only failed jobs")
    run = commands.add_parser("run", help="enqueue a job (a cron job too) by name")
    run.add_argument("name", choices=_job_names())
    run.add_argument("--arg", action="append", default=[], help="positional argument (JSON)")
    run.add_argument("--kw", action="append", default=[], metavar="KEY=VALUE",
                     help="keyword argument (value as JSON, else a string)")
    run.add_argument("--job-id", default=None,
                     help="job id (default: a new one; an id still kept is refused)")
    return parser.parse_args(argv)


async def main(options: argparse.Namespace) -> int:
    client = arq_client(get_settings())
    try:
        if options.command == "queue":
            return await _queue(client)
        if options.command == "results":
            return await _results(client, options.failed)
        return await _run(client, options.name, options.arg, options.kw,
                          options.job_id or f"manual:{uuid.uuid4().hex}")
    finally:
        await client.aclose()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
