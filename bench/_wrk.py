"""Driving a server with wrk (C, 2 threads): a fixed list of requests, each with its own
token (and body), taken in turn across the threads, so the load generator costs little of
the machine's two cores and the figures are the server's.

`run(base, requests, seconds=, clients=)` returns requests, req/s, p50/p95/p99/max (ms)
and the count of each status code. The list is walked once in order (threads interleave:
thread k takes entries k, k+T, k+2T, ...); a run longer than the list wraps around.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    path: str
    token: str
    method: str = "GET"
    body: str | None = None  # JSON text


LUA = """
local list = {%(entries)s}
local threads = {}
local nthreads = %(threads)d
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  position = id
  statuses = {}
end
function request()
  local e = list[(position %% #list) + 1]
  position = position + nthreads
  local headers = {["Authorization"] = "Bearer " .. e[3]}
  if e[4] then headers["Content-Type"] = "application/json" end
  return wrk.format(e[1], e[2], headers, e[4])
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do merged[code] = (merged[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(merged) do table.insert(parts, string.format('"%%d": %%d', code, n)) end
  io.write(string.format(
    'RESULT {"requests": %%d, "seconds": %%.3f, "socket_errors": %%d, '
    .. '"p50_ms": %%.2f, "p95_ms": %%.2f, "p99_ms": %%.2f, "max_ms": %%.2f, '
    .. '"statuses": {%%s}}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, table.concat(parts, ", ")))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(value: str) -> str:
    return json.dumps(value)  # JSON string escapes are valid Lua for this ASCII text


def run(base: str, requests: list[Request], *, seconds: float, clients: int,
        threads: int = 2) -> dict:
    entries = ", ".join(
        "{" + ", ".join((_lua_string(r.method), _lua_string(r.path), _lua_string(r.token),
                         _lua_string(r.body) if r.body is not None else "nil")) + "}"
        for r in requests)
    threads = min(threads, clients)
    return run_script(base, LUA % {"entries": entries, "threads": threads},
                      [f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s",
                       "--timeout", "30s"])


def run_script(url: str, script: str, options: list[str]) -> dict:
    """wrk with `options` and a Lua `script` whose `done` prints one `RESULT {json}` line;
    that JSON, with `rps` added."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        output = subprocess.run(["wrk", *options, "-s", file.name, url],
                                capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(file.name)
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def line(name: str, r: dict) -> str:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
    return (f"{name:<12} n={r['requests']:>6}  p50 {r['p50_ms']:6.1f} ms  "
            f"p95 {r['p95_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  {r['rps']:6.1f} req/s  "
            f"{{{statuses}}}" + (f" socket errors {r['socket_errors']}"
                                 if r["socket_errors"] else ""))
