"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.core.auth import CurrentPrincipal
from app.core.errors import problem
from app.core.problems import problems
from app.core.state import AppState, StateDep

router = APIRouter()

CHECK_TIMEOUT_SECONDS = 2.0


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: dict[str, Literal["ok"]]


@router.get("/healthz", operation_id="healthz", summary="The process is alive", tags=["ops"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check_postgres(state: AppState) -> None:
    async with state.db.engine.connect() as connection:
        await connection.execute(text("select 1"))


async def _check_redis(state: AppState) -> None:
    await state.redis.ping()


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Postgres and Redis are reachable",
    response_model=Readiness,
    tags=["ops"],
    responses=problems({503: ["not_ready"]}),
)
async def readyz(request: Request, state: StateDep) -> JSONResponse:
    checks = {"postgres": _check_postgres, "redis": _check_redis}
    results = await asyncio.gather(
        *(asyncio.wait_for(check(state), CHECK_TIMEOUT_SECONDS) for check in checks.values()),
        return_exceptions=True,
    )
    failed = [name for name, result in zip(checks, results, strict=True)
              if isinstance(result, BaseException)]
    if failed:
        return problem(503, "not_ready", "Not ready", f"Unreachable: {', '.join(failed)}",
                       request, failed=failed)
    return JSONResponse({"status": "ready", "checks": {name: "ok" for name in checks}})


@router.get("/api/v1/whoami", operation_id="whoami", summary="The caller's identity",
            tags=["auth"])
async def whoami(principal: CurrentPrincipal) -> dict[str, str]:
    return {"user_id": str(principal.user_id), "role": principal.role}
