"""`mentorship dev`'s parts that need no database: the child supervisor (restart with
backoff, give up after 5 failures in a minute), the port check, the worker's quiet INFO
log and the logs' colours."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.logging import use_colours
from app.devtools.dev import PortInUse, bind_port
from app.devtools.supervise import GaveUp, Supervisor
from app.workers import ROUTINE_CRON_JOBS, RoutineJobFilter
from tests.support.harness import ROOT


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _wait_exited(supervisor: Supervisor) -> None:
    deadline = time.monotonic() + 10
    while not supervisor.any_exited():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_child_that_dies_is_restarted_after_a_backoff_then_given_up_on() -> None:
    lines: list[str] = []
    clock = Clock()
    supervisor = Supervisor(lines.append, clock=clock)
    crash = [sys.executable, "-c", "import sys; sys.exit(3)"]
    supervisor.spawn("api", crash, dict(os.environ))
    pids = []
    try:
        delays = []
        for failure in range(1, 5):
            _wait_exited(supervisor)
            supervisor.check()  # found dead: a log line and a backoff
            assert "api exited with status 3: restarting in" in lines[-1]
            assert f"failure {failure} of 5" in lines[-1]
            child = supervisor.children["api"]
            delays.append(child.restart_at - clock.now)
            clock.now += delays[-1] - 0.01
            supervisor.check()  # not yet
            assert not child.running and child.restart_at is not None
            clock.now += 0.02
            pids.append(child.process.pid)
            supervisor.check()
            assert lines[-1].startswith("  restarted api (pid ")
            assert child.process.pid != pids[-1]
        assert delays == [1, 2, 4, 8]
        _wait_exited(supervisor)
        with pytest.raises(GaveUp, match=r"api exited 5 times within 60 s \(last status 3\)"):
            supervisor.check()
    finally:
        supervisor.stop(grace_seconds=2)


def test_failures_older_than_a_minute_are_forgiven() -> None:
    lines: list[str] = []
    clock = Clock()
    supervisor = Supervisor(lines.append, clock=clock)
    supervisor.spawn("worker-1", [sys.executable, "-c", "pass"], dict(os.environ))
    try:
        for _ in range(8):  # one failure every 30 s: never 5 within 60 s
            _wait_exited(supervisor)
            supervisor.check()
            clock.now += 30
            supervisor.check()
        assert "failure 3 of 5" in "\n".join(lines)
        assert "failure 4 of 5" not in "\n".join(lines)
    finally:
        supervisor.stop(grace_seconds=2)


def test_stop_ends_children_and_their_process_groups() -> None:
    supervisor = Supervisor(lambda line: None)
    sleeper = [sys.executable, "-c",
               "import subprocess, sys, time;"
               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
               "time.sleep(60)"]
    child = supervisor.spawn("api", sleeper, dict(os.environ))

    def group() -> set[int]:
        return {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                and _pgid(int(p.name)) == child.process.pid}

    # Two interpreters start one after the other: seconds on a loaded machine.
    _until(lambda: len(group()) == 2, "the child and its own child to run")
    members = group()
    supervisor.stop(grace_seconds=5)
    assert child.process.returncode is not None
    # The grandchild was signalled (its parent was reaped): it is gone once the kernel has
    # run its exit.
    _until(lambda: not [pid for pid in members if _pgid(pid) == child.process.pid],
           "the process group to be gone")


def _until(condition, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _pgid(pid: int) -> int | None:
    """The process group of a live process (None when gone or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[2])


def test_a_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"cannot listen on 127.0.0.1:{port} .*PORT="):
            bind_port("127.0.0.1", port)
    with bind_port("127.0.0.1", port) as ours:  # free again
        assert ours.getsockname()[1] == port


def test_dev_on_a_busy_port_says_so_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "app.devtools.cli", "dev", "--port", str(port),
             "--data-dir", str(tmp_path / "data")],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
            text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.stdout
    assert "starting embedded" not in result.stdout and "Press Ctrl-C" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "data").exists()  # nothing was started


def _arq_record(message: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("arq.worker", level, __file__, 1, message, args, None)


def test_an_idle_worker_is_quiet_at_info_and_says_everything_at_debug() -> None:
    assert {"refresh_programme_metrics", "cron:prioritize_work_queue"} <= ROUTINE_CRON_JOBS
    routine = [_arq_record("%6.2fs → %s(%s)%s", 1.0, "cron:prioritize_work_queue", "", ""),
               _arq_record("%6.2fs ← %s ● %s", 0.2, "cron:prioritize_work_queue", 0),
               _arq_record("%6.2fs → %s(%s)%s", 1.0, "refresh_programme_metrics", "", "")]
    kept = [_arq_record("%6.2fs → %s(%s)%s", 0.1, "abc:auto_match_mentors", "", ""),
            _arq_record("%6.2fs ! %s failed, %s: %s", 1.0, "refresh_programme_metrics", "E",
                        "x", level=logging.ERROR),
            _arq_record("%6.2fs ↻ %s retrying job in %0.2fs", 1.0, "refresh_programme_metrics",
                        5),
            _arq_record("Starting worker for %d functions: %s", 8, "...")]
    quiet = RoutineJobFilter()
    root = logging.getLogger()
    saved = root.level
    try:
        root.setLevel(logging.INFO)
        assert [quiet.filter(r) for r in routine] == [False] * len(routine)
        assert all(quiet.filter(r) for r in kept)
        root.setLevel(logging.DEBUG)
        assert all(quiet.filter(r) for r in routine)
    finally:
        root.setLevel(saved)


def test_logs_have_colours_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert not use_colours()
    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert use_colours()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colours()
