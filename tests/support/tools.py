"""Programs from Debian that some tests drive (a browser, promtool, wrk, node).

`scripts/bootstrap --test-tools` (`make test`, `.ci/run`) installs them when it runs as root
with apt. Elsewhere a test that needs a missing one is skipped with one line naming the
package to install, except under CI=true, where a missing tool fails the test: CI must never
go green by skipping."""

from __future__ import annotations

import os
import shutil

import pytest

# command -> Debian package
PACKAGES = {"chromium": "chromium", "promtool": "prometheus", "wrk": "wrk", "node": "nodejs",
            "npm": "npm"}


def require_tool(command: str) -> str:
    """The path of `command`; skips (or, under CI=true, fails) the test when it is missing."""
    path = shutil.which(command)
    if path:
        return path
    package = PACKAGES.get(command, command)
    message = (f"needs `{command}`: apt-get install {package} "
               "(as root, `make test` installs it)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}; CI=true: a missing tool is a failure, not a skip")
    pytest.skip(message)
