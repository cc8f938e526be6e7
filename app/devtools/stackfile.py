"""Where a running `mentorship dev` stack can be found by the other `mentorship` commands.

On the embedded default (no DATABASE_URL / REDIS_URL) the database listens on a unix socket
under the data directory and the stack runs with ENVIRONMENT=development, so a
`mentorship token --role service --user-id UUID` typed in a second terminal would otherwise
look for PostgreSQL on 127.0.0.1:5432 and refuse the development keys. The stack writes
`.data/dev-stack.json` (relative to where it was started, whatever `--data-dir` is) while it
runs; `mentorship token` run from the same directory, with no DATABASE_URL of its own, uses
that stack's servers and its development settings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STACK_FILE = Path(".data") / "dev-stack.json"


def write(environment: dict[str, str]) -> Path:
    """Record this process's stack (its pid and the settings the children got)."""
    STACK_FILE.parent.mkdir(parents=True, exist_ok=True)
    STACK_FILE.write_text(json.dumps({"pid": os.getpid(), "environment": environment}))
    return STACK_FILE


def remove() -> None:
    try:
        data = json.loads(STACK_FILE.read_text())
    except (OSError, ValueError):
        return
    if data.get("pid") == os.getpid():  # never another stack's file
        STACK_FILE.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_stack() -> dict[str, str] | None:
    """The environment of the stack recorded here, if its process still runs."""
    try:
        data = json.loads(STACK_FILE.read_text())
        pid, environment = int(data["pid"]), data["environment"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(environment, dict) or not _alive(pid):
        return None
    return {str(key): str(value) for key, value in environment.items()}
