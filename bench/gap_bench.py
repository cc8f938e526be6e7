"""Per-request cost against the stack's floor, measured honestly.

Two servers in the same run, one uvicorn worker each, on a database seeded with
`mentorship seed`: the bare anchor (bench/bare_app.py: FastAPI + asyncpg, one transaction,
`set_config`, `SELECT 1`; no auth, no middleware) and the real `create_app()`. wrk (a C load
generator, so the client does not compete with Python for the cores) drives each route for
`--seconds`, a random mentor token per request, routes alternating round by round so drift
on a noisy machine hits all alike. Prints req/s, p50 and p99, and each route's share of the
floor; records nothing by itself (copy the table into bench/RESULTS.md with the load
average it prints).

    python -m bench.gap_bench --mentors 1000 --mentees 20000 --seconds 10 --rounds 3
    python -m bench.gap_bench --mentors 20 --mentees 200 --seconds 1 --rounds 1   # smoke
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUTES = {
    "floor (bare stack)": "/floor",
    "GET /api/v1/mentor/profile": "/api/v1/mentor/profile",
    "GET /api/v1/mentor/dashboard": "/api/v1/mentor/dashboard",
    "GET /api/v1/mentor/workqueue": "/api/v1/mentor/workqueue",
}
WRK_SCRIPT = """
local tokens = {}
for line in io.lines("%s") do tokens[#tokens + 1] = line end
math.randomseed(os.time())
request = function()
  local token = tokens[math.random(#tokens)]
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. token})
end
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentors", type=int, default=1000)
    parser.add_argument("--mentees", type=int, default=20000)
    parser.add_argument("--seconds", type=int, default=10, help="per route and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=500, help="distinct mentor tokens")
    return parser.parse_args(argv)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server(stack: ExitStack, factory: str, env: dict[str, str], port: int) -> str:
    log = open(tempfile.mktemp(prefix="gap-", suffix=".log"), "w")  # noqa: SIM115
    from bench._server import spawn, stop, wait_healthy

    process = spawn(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    stack.callback(log.close)
    stack.callback(stop, process)  # also on Ctrl-C or SIGTERM: never leave a server behind
    base = f"http://127.0.0.1:{port}"
    import asyncio

    asyncio.run(wait_healthy(base, process))
    return base


def _wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s",
                          "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non_2xx:
        raise RuntimeError(f"{url}: {non_2xx[1]} failed responses\n{out}")
    return {"rps": rate, "p50": _ms(out, "50%"), "p99": _ms(out, "99%")}


def _ms(out: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)\b", out).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from bench._server import install_cleanup

    install_cleanup()  # SIGTERM/SIGHUP unwind like Ctrl-C: servers stopped, databases dropped
    from bench._database import BenchDatabase  # sets the harness's defaults: not at --help
    from bench._server import BENCH_JWT_SECRET

    with BenchDatabase() as database, ExitStack() as stack:
        env = {**os.environ, **database.servers.environment(), "ENVIRONMENT": "production",
               "JWT_SECRET": BENCH_JWT_SECRET, "LOG_LEVEL": "WARNING"}
        subprocess.run([sys.executable, "-m", "app.devtools.cli", "seed", "--mentors",
                        str(args.mentors), "--mentees", str(args.mentees)],
                       cwd=ROOT, env={**env, "ENVIRONMENT": "development"}, check=True,
                       capture_output=True)
        tokens = _mentor_tokens(database, args.tokens)
        token_file = Path(tempfile.mktemp(prefix="gap-tokens-"))
        token_file.write_text("\n".join(tokens) + "\n")
        stack.callback(token_file.unlink)
        script = Path(tempfile.mktemp(prefix="gap-", suffix=".lua"))
        script.write_text(WRK_SCRIPT % token_file)
        stack.callback(script.unlink)
        bare = _server(stack, "bench.bare_app:app", env, _free_port())
        real = _server(stack, "app.main:create_app", env, _free_port())
        load_before = os.getloadavg()
        results: dict[str, list[dict[str, float]]] = {name: [] for name in ROUTES}
        for _ in range(args.rounds):
            for name, path in ROUTES.items():
                base = bare if path == "/floor" else real
                results[name].append(_wrk(base + path, script, args.seconds,
                                          args.connections))
        _report(results, load_before, os.getloadavg(), args)


def _mentor_tokens(database, count: int) -> list[str]:
    import asyncio

    from app.core.auth import mint_token

    async def ids() -> list:
        connection = await database.connect()
        try:
            return [r["id"] for r in await connection.fetch(
                "select id from users where role = 'mentor' and is_mentor order by id "
                "limit $1", count)]
        finally:
            await connection.close()

    from bench._server import BENCH_JWT_SECRET
    settings = database.settings.model_copy(update={"jwt_secret": BENCH_JWT_SECRET})
    return [mint_token(i, "mentor", settings, ttl=timedelta(hours=2))
            for i in asyncio.run(ids())]


def _report(results, load_before, load_after, args) -> None:
    def best(runs: list[dict[str, float]], key: str) -> float:
        return (max if key == "rps" else min)(run[key] for run in runs)

    floor = best(results["floor (bare stack)"], "rps")
    print(f"\n{args.mentors} mentors x {args.mentees} mentees, wrk -c {args.connections}, "
          f"{args.rounds} rounds x {args.seconds} s per route (best round shown)")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print("| route | req/s | p50 ms | p99 ms | share of the bare floor |\n|---|---|---|---|---|")
    for name, runs in results.items():
        rps = best(runs, "rps")
        print(f"| {name} | {rps:,.0f} | {best(runs, 'p50'):.1f} | {best(runs, 'p99'):.1f} "
              f"| {100 * rps / floor:.0f} % |")


if __name__ == "__main__":
    main()
