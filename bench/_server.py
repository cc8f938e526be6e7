"""Shared by the benchmarks that drive a real uvicorn process."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess

import httpx

# Servers started by a benchmark run as production (ENVIRONMENT=production), which refuses
# the public development key: they and the tokens share this one, new for each run.
BENCH_JWT_SECRET = secrets.token_urlsafe(32)

# A benchmark drives thousands of requests a minute with a handful of tokens: the rate
# limiter still runs (its Redis round trip is part of what is measured) with room for them.
# The servers inherit this environment (every benchmark passes {**os.environ, ...}).
for _limit in ("RATE_LIMIT_PER_MINUTE", "RATE_LIMIT_SERVICE_PER_MINUTE"):
    os.environ.setdefault(_limit, "100000000")


async def wait_healthy(base_url: str, process: subprocess.Popen | None = None,
                       within: float = 60.0) -> None:
    """Poll `/healthz` until it answers 200; fail early if `process` (the server) exits."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(int(within / 0.1)):
            if process is not None and process.poll() is not None:
                raise RuntimeError("uvicorn exited before it was healthy")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("uvicorn did not become healthy")
