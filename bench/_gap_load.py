"""wrk workloads for bench.gap_bench: the Lua scripts, the request data they read from
files, and one wrk run with the server's CPU time measured around it.

Every script prints one machine-readable line at the end (`GAP {...}`): requests, the
p50/p95/p99 latency in microseconds, and the responses by status class, so a POST route
may answer 409 (a booking that does not fit) without failing the run while 5xx still do.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

# (Lua `%` is written `%%`: every script is filled in with Python's `%`.)
# Counts statuses per thread (globals of the thread's Lua state) and prints them with the
# latency percentiles; `setup` keeps the threads so `done` can read their counters.
_COMMON = """
local threads = {}
local thread_number = 0
function setup(thread)
  thread_number = thread_number + 1
  thread:set("thread_number", thread_number)
  table.insert(threads, thread)
end
c2, c4, c5, c409 = 0, 0, 0, 0
function response(status, headers, body)
  if status < 300 then c2 = c2 + 1
  elseif status >= 500 then c5 = c5 + 1
  else
    c4 = c4 + 1
    if status == 409 then c409 = c409 + 1 end
  end
end
function done(summary, latency, requests)
  local s2, s4, s5, s409 = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s2 = s2 + t:get("c2"); s4 = s4 + t:get("c4"); s5 = s5 + t:get("c5")
    s409 = s409 + t:get("c409")
  end
  io.write(string.format(
    'GAP {"requests": %%d, "seconds": %%f, "p50": %%d, "p95": %%d, "p99": %%d, '
    .. '"ok": %%d, "client_errors": %%d, "conflicts": %%d, "server_errors": %%d, '
    .. '"socket_errors": %%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), s2, s4, s409, s5,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
local function lines(path)
  local out = {}
  for line in io.lines(path) do out[#out + 1] = line end
  return out
end
"""

GET_SCRIPT = _COMMON + """
local tokens = lines("%(tokens)s")
math.randomseed(os.time())
request = function()
  local token = tokens[math.random(#tokens)]
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. token})
end
"""

# One line per request: token TAB JSON body.
BOOKING_SCRIPT = _COMMON + """
local bookings = lines("%(bookings)s")
local next_index = 0
request = function()
  next_index = next_index %% #bookings + 1
  local token, body = bookings[next_index]:match("([^\\t]+)\\t(.*)")
  return wrk.format("POST", "/api/v1/mentor/sessions",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
init = function(args)
  math.randomseed(os.time() + (thread_number or 0))
  next_index = math.random(#bookings)
end
"""

# One `mission.submitted` per request, each with its own event and submission id: a new
# nonce per run, then the thread number and a counter.
EVENT_SCRIPT = _COMMON + """
local mentees = lines("%(mentees)s")
local token = "%(token)s"
local counter = 0
request = function()
  counter = counter + 1
  local thread = thread_number or 0
  local body = string.format(
    '{"id": "%(nonce)s-%%04x-4000-8000-%%012x", "type": "mission.submitted", '
    .. '"occurred_at": "%(now)s", "source": "gap-bench", "data": {'
    .. '"submission_id": "%(nonce)s-%%04x-4000-9000-%%012x", "mentee_id": "%%s", '
    .. '"mission_id": "%(mission)s", "title": "Bench mission", "submitted_at": "%(now)s"}}',
    thread, counter, thread, counter, mentees[math.random(#mentees)])
  return wrk.format("POST", "/api/v1/events",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def get_script(directory: Path, tokens: list[str]) -> Path:
    token_file = write(directory, "tokens.txt", "\n".join(tokens) + "\n")
    return write(directory, "get.lua", GET_SCRIPT % {"tokens": token_file})


@dataclass
class Mentor:
    token: str
    zone: ZoneInfo
    windows: list[dict]
    mentees: list[str]


def booking_script(directory: Path, mentors: list[Mentor], count: int = 20_000) -> Path:
    """`count` bookings of a random mentee of a random mentor, 60 minutes on the hour inside
    one of the mentor's weekly windows, 2 to 40 weeks ahead (so most fit; the rest are 409
    `double_booking` or `capacity_exceeded`, still whole requests)."""
    rng = random.Random()
    today = date.today()
    monday = today - timedelta(days=today.weekday())
    lines = []
    for _ in range(count):
        mentor = rng.choice([m for m in mentors if m.windows and m.mentees])
        window = rng.choice(mentor.windows)
        start, end = (time.fromisoformat(window[k]) for k in ("start", "end"))
        hours = (end.hour - start.hour) - (1 if end.minute < start.minute else 0)
        if hours < 1:
            continue
        day = monday + timedelta(weeks=rng.randrange(2, 40), days=window["weekday"])
        local = datetime.combine(day, start, tzinfo=mentor.zone) + timedelta(
            hours=rng.randrange(hours))
        body = {"mentee_id": rng.choice(mentor.mentees), "duration_minutes": 60,
                "starts_at": local.astimezone(UTC).isoformat(), "agenda": "gap bench"}
        lines.append(f"{mentor.token}\t{json.dumps(body)}")
    bookings = write(directory, "bookings.txt", "\n".join(lines) + "\n")
    return write(directory, "booking.lua", BOOKING_SCRIPT % {"bookings": bookings})


def event_script(directory: Path, token: str, mentees: list[str]) -> Path:
    mentee_file = write(directory, "mentees.txt", "\n".join(mentees) + "\n")
    nonce = uuid.uuid4().hex[:8]
    return write(directory, "events.lua", EVENT_SCRIPT % {
        "mentees": mentee_file, "token": token, "nonce": nonce,
        "mission": str(uuid.uuid4()), "now": datetime.now(UTC).isoformat()})


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_seconds(database: str) -> dict[int, float]:
    """CPU so far of each Postgres backend connected to `database` (by pid): /proc of the
    processes whose command line names the database (the server runs on this machine)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            if command.startswith(b"postgres: ") and f" {database} ".encode() in command:
                out[int(entry.name)] = cpu_seconds(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return out


def wrk(url: str, script: Path, seconds: int, connections: int, pid: int,
        database: str | None = None) -> dict[str, float]:
    """One wrk run; adds req/s, latencies in ms and the server's CPU ms per request (and
    with `database`, its Postgres backends' CPU ms per request)."""
    cpu_before = cpu_seconds(pid)
    backends_before = backend_cpu_seconds(database) if database else {}
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s",
                          "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    backends = (sum(used - backends_before.get(backend, 0.0)
                    for backend, used in backend_cpu_seconds(database).items())
                if database else 0.0)
    result = json.loads(re.search(r"^GAP (.*)$", out, re.MULTILINE)[1])
    if result["server_errors"] or result["socket_errors"]:
        raise RuntimeError(f"{url}: {result['server_errors']} 5xx, "
                           f"{result['socket_errors']} socket errors\n{out}")
    requests = max(result["requests"], 1)
    return {**result, "rps": result["requests"] / result["seconds"],
            "ok_rps": result["ok"] / result["seconds"],
            **{key: result[key] / 1000 for key in ("p50", "p95", "p99")},
            "cpu_ms": 1000 * cpu / requests, "db_cpu_ms": 1000 * backends / requests}
