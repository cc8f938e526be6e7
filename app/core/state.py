"""The process's shared objects, built once in the app's lifespan and handed to routes typed.

Routes take `StateDep` (or `SettingsDep`, `RedisDep`) instead of reading `request.app.state`
attributes by name: one attribute lookup per request, and a type checker sees every use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from app.config import Settings
from app.core.db import Database
from app.core.identity import IdentityCache
from app.core.ratelimit import RateLimiter

if TYPE_CHECKING:  # built by app/main.py, which may import domains; core only names them
    from app.services.live.hub import StreamHub
    from app.services.sessions.video import VideoProvider


@dataclass(slots=True, eq=False)
class AppState:
    settings: Settings
    db: Database
    redis: Redis
    video: VideoProvider  # one per process, so a Zoom token is cached across requests
    hub: StreamHub  # this process's SSE readers
    identities: IdentityCache  # who each token's user is now (app/core/identity.py)
    limiter: RateLimiter  # this process's view of the rate budgets (app/core/ratelimit.py)


# Dependencies are `async def` although they do not await: FastAPI runs a plain `def`
# dependency in the thread pool, a hand-off per request for a simple attribute read.
async def app_state(request: Request) -> AppState:
    return request.app.state.shared


async def _settings(request: Request) -> Settings:
    return request.app.state.shared.settings


async def _redis(request: Request) -> Redis:
    return request.app.state.shared.redis


StateDep = Annotated[AppState, Depends(app_state)]
SettingsDep = Annotated[Settings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
