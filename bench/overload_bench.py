"""Overload without collapse: one API process driven far past its capacity.

One uvicorn worker of the real `create_app()` on a database seeded with `mentorship seed`,
driven by wrk (C, so the client does not compete with Python for the cores) on one route
with a random mentor token per request: first at `--capacity-connections` (what one process
serves at its best), then at `--connections` (10x and more). The same run also drives a
second process with the admission limit off (MAX_IN_FLIGHT_REQUESTS=0 and SQLAlchemy's
30 s pool wait: the behaviour before app/core/admission.py), so the two answers to overload
sit side by side.

wrk reports one latency for all responses; this bench needs them split by status (the
admitted 200s and the refused 503s), so wrk runs one connection per thread and its Lua
script times each request itself (request() to response(), CLOCK_MONOTONIC through LuaJIT's
ffi) and hands the samples over at the end. Prints, per process and load: req/s, the share
of 503 `overloaded`, p50/p99 of the admitted and of the refused requests, anything else
(other statuses, socket errors). Clients honour Retry-After (wait that long after a 503),
as the contract asks; one more run at the overload has them retry at once instead, which
shows what the refusals themselves cost. Records nothing by itself: copy the table into
bench/RESULTS.md ("Overload") with the load average it prints.

    python -m bench.overload_bench --mentors 1000 --mentees 20000 --seconds 20
    python -m bench.overload_bench --mentors 5 --mentees 20 --seconds 1   # smoke
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One connection per wrk thread, so request() and response() of a thread alternate and
# their time difference is that request's latency. `%s` is where done() writes the samples.
WRK_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } ob_timespec;
           int clock_gettime(int, ob_timespec *); ]]
local ts = ffi.new("ob_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = line end
local threads = {}
function setup(thread) threads[#threads + 1] = thread end
function init(args)
  math.randomseed(os.time() + math.floor(now_ms() * 1000) %% 100000)
  codes, lats, n, started, backoff = {}, {}, 0, 0, 0
  honour = args[1] == "honour"
end
-- A client that honours Retry-After (as the contract asks, and as load balancers do) waits
-- that long after a 503 before its next request; wrk calls delay() before each request.
function delay()
  local wait = backoff
  backoff = 0
  return wait
end
function request()
  started = now_ms()
  local token = tokens[math.random(#tokens)]
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. token})
end
function response(status, headers, body)
  n = n + 1
  codes[n] = status
  lats[n] = now_ms() - started
  if status == 503 and honour then
    backoff = 1000 * (tonumber(headers["retry-after"] or headers["Retry-After"]) or 1)
  end
end
function done(summary, latency, requests)
  local out = io.open("%s", "w")
  for _, thread in ipairs(threads) do
    local c, l = thread:get("codes"), thread:get("lats")
    for i = 1, #c do out:write(c[i], " ", string.format("%%.3f", l[i]), "\\n") end
  end
  out:close()
end
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentors", type=int, default=1000)
    parser.add_argument("--mentees", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=20, help="per process and load")
    parser.add_argument("--route", default="/api/v1/mentor/workqueue")
    parser.add_argument("--connections", type=int, default=200, help="the overload")
    parser.add_argument("--capacity-connections", type=int, default=8,
                        help="the load one process serves at its best")
    parser.add_argument("--tokens", type=int, default=500, help="distinct mentor tokens")
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="MAX_IN_FLIGHT_REQUESTS of the limited process (default: the "
                             "setting's default)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the process without admission limit")
    parser.add_argument("--no-hammer", action="store_true",
                        help="skip the run whose clients ignore Retry-After")
    return parser.parse_args(argv)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _wrk(url: str, tokens: Path, seconds: int, connections: int, retry_after: str) -> dict:
    """One wrk run; per status the latencies (ms), plus req/s and socket errors."""
    with tempfile.TemporaryDirectory(prefix="overload-") as tmp:
        samples, script = Path(tmp) / "samples", Path(tmp) / "script.lua"
        script.write_text(WRK_SCRIPT % (tokens, samples))
        out = subprocess.run(
            ["wrk", "-t", str(connections), "-c", str(connections), "-d", f"{seconds}s",
             "--timeout", "30s", "-s", str(script), url, "--", retry_after],
            capture_output=True, text=True, check=True).stdout
        by_status: dict[int, list[float]] = {}
        for line in samples.read_text().splitlines():
            status, ms = line.split()
            by_status.setdefault(int(status), []).append(float(ms))
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
            "by_status": by_status, "socket_errors": errors[1] if errors else "none"}


def _fmt(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:,.1f}"


def _report(rows: list[tuple[str, int, dict]], seconds: int, load: tuple, args) -> None:
    print(f"\n{args.mentors} mentors x {args.mentees} mentees, GET {args.route}, "
          f"{seconds} s per line, wrk one connection per thread; {os.cpu_count()} cores")
    print(f"load average before {load[0][0]:.2f}, after {load[1][0]:.2f}")
    print("| process | connections | req/s | 200 req/s | 503 share | 200 p50 ms | 200 p99 ms "
          "| 503 p50 ms | 503 p99 ms | other |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, connections, result in rows:
        by_status = result["by_status"]
        total = sum(len(v) for v in by_status.values()) or 1
        ok, refused = by_status.get(200, []), by_status.get(503, [])
        other = {s: len(v) for s, v in by_status.items() if s not in (200, 503)}
        other_text = ", ".join(f"{n} x {s}" for s, n in sorted(other.items())) or "none"
        if result["socket_errors"] != "none":
            other_text += f"; socket errors: {result['socket_errors']}"
        print(f"| {name} | {connections} | {result['rps']:,.0f} "
              f"| {len(ok) / seconds:,.0f} | {100 * len(refused) / total:.0f} % "
              f"| {_fmt(_percentile(ok, 0.5))} | {_fmt(_percentile(ok, 0.99))} "
              f"| {_fmt(_percentile(refused, 0.5))} | {_fmt(_percentile(refused, 0.99))} "
              f"| {other_text} |")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    from app.config import Settings
    from bench._database import BenchDatabase  # sets the harness's defaults: not at --help
    from bench._server import BENCH_JWT_SECRET
    from bench.gap_bench import _free_port, _seeded, _server

    with BenchDatabase() as database, ExitStack() as stack:
        env = {**os.environ, **database.servers.environment(), "ENVIRONMENT": "production",
               "JWT_SECRET": BENCH_JWT_SECRET, "LOG_LEVEL": "WARNING"}
        subprocess.run([sys.executable, "-m", "app.devtools.cli", "seed", "--mentors",
                        str(args.mentors), "--mentees", str(args.mentees)],
                       cwd=ROOT, env={**env, "ENVIRONMENT": "development"}, check=True,
                       capture_output=True)
        token_file = Path(tempfile.mktemp(prefix="overload-tokens-"))
        mentors, _, _ = _seeded(database.servers.database_url, args.tokens)
        token_file.write_text("\n".join(mentor.token for mentor in mentors) + "\n")
        stack.callback(token_file.unlink)
        # The harness's environment lifts the limit out of the tests' way: the limited
        # process gets the setting's default (or --max-in-flight) back.
        default = Settings.model_fields["max_in_flight_requests"].default
        limited_env = {**env, "MAX_IN_FLIGHT_REQUESTS": str(
            default if args.max_in_flight is None else args.max_in_flight)}
        work = Path(tempfile.mkdtemp(prefix="overload-"))
        stack.callback(shutil.rmtree, work, True)

        def server(process_env: dict[str, str], tag: str) -> str:
            (work / tag).mkdir()  # each process's log apart
            base, _pid = _server(stack, "app.main:create_app", process_env, _free_port(),
                                 work / tag)
            return base

        processes = [("admission limit", server(limited_env, "limited"))]
        if not args.no_baseline:
            unlimited_env = {**env, "MAX_IN_FLIGHT_REQUESTS": "0",
                             "DB_POOL_TIMEOUT_SECONDS": "30"}
            processes.append(("no limit (before)", server(unlimited_env, "unlimited")))
        load_before = os.getloadavg()
        # Clients honour Retry-After; one more run at the overload has clients that retry a
        # 503 at once (a closed loop hammering the refusals: their cost shows).
        runs = [(name, base, connections, "honour")
                for connections in (args.capacity_connections, args.connections)
                for name, base in processes]
        if not args.no_hammer:
            runs.insert(len(processes) + 1, (processes[0][0] + ", clients ignore Retry-After",
                                             processes[0][1], args.connections, "ignore"))
        rows = [(name, connections, _wrk(base + args.route, token_file, args.seconds,
                                         connections, retry_after))
                for name, base, connections, retry_after in runs]
        _report(rows, args.seconds, (load_before, os.getloadavg()), args)


if __name__ == "__main__":
    main()
