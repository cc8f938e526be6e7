"""JWT verification (PyJWT), the `Principal` and role dependencies.

The algorithm is pinned by settings and never read from the token; `sub`, `role` and `exp`
are required; `iss` / `aud` are checked when configured. A valid signature is not enough:
the token's `sub` must be an active user whose current role in the database is the token's
`role` (app/core/identity.py, cached per process for `AUTH_CACHE_SECONDS`), else 401
`invalid_token`.
"""


# No `from __future__ import annotations` here: FastAPI must resolve the closure-local
# `Depends(source)` in `require_roles` at definition time.
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.config import Settings
from app.core.errors import Forbidden, ServiceUnavailable, Unauthorized
from app.core.identity import IdentityCache
from app.core.problems import declares
from app.models.user import ROLES, Role


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    role: Role
    expires_at: datetime | None = None


def _verification_key(settings: Settings) -> str:
    key = settings.jwt_public_key if settings.jwt_algorithm == "RS256" else settings.jwt_secret
    if not key:  # unreachable once `require_secure` passed at startup; never an empty key
        raise Unauthorized("Token verification is not configured", code="invalid_token")
    return key


def _expiry(exp: object) -> datetime:
    """`exp` as a datetime: a JSON number within datetime's range (RFC 7519 NumericDate).
    PyJWT accepts a numeric string or a float like 1e300 as long as it is in the future."""
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthorized("The token's exp is not a number", code="invalid_token")
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise Unauthorized("The token's exp is out of range", code="invalid_token") from exc


# Tokens whose signature and claims verified, by token text and verification settings:
# (principal, valid from, valid until). A client sends the same token with every request;
# the same bytes verify the same way, so only the time claims need checking again (as
# PyJWT does: iat and nbf not in the future, exp in the future). Failures are not kept.
_VERIFIED: dict[tuple, tuple[Principal, float, float]] = {}
_VERIFIED_MAX = 10_000


def decode_token(token: str, settings: Settings) -> Principal:
    key = (token, settings.jwt_algorithm, _verification_key(settings),
           settings.jwt_audience, settings.jwt_issuer)
    cached = _VERIFIED.get(key)
    if cached is not None and cached[1] <= time.time() < cached[2]:
        return cached[0]
    principal, valid_from, valid_until = _decode(token, settings)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        del _VERIFIED[next(iter(_VERIFIED))]  # the oldest
    _VERIFIED[key] = (principal, valid_from, valid_until)
    return principal


def _decode(token: str, settings: Settings) -> tuple[Principal, float, float]:
    try:
        claims = jwt.decode(
            token,
            _verification_key(settings),
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={
                "require": ["sub", "role", "exp"],
                "verify_aud": settings.jwt_audience is not None,
            },
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired", code="token_expired") from exc
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
        # PyJWT's own checks raise PyJWTError; the others guard odd claim values it parses.
        raise Unauthorized("The token is invalid", code="invalid_token") from exc
    role = claims.get("role")
    if role not in ROLES:
        raise Unauthorized("The token's role is unknown", code="invalid_token")
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError as exc:
        raise Unauthorized("The token's subject is not a UUID", code="invalid_token") from exc
    expires_at = _expiry(claims["exp"])
    valid_from = max((int(claims[name]) for name in ("iat", "nbf") if name in claims),
                     default=float("-inf"))
    return Principal(user_id, role, expires_at), valid_from, int(claims["exp"])


def mint_token(user_id: uuid.UUID | str, role: str, settings: Settings,
               ttl: timedelta = timedelta(hours=12)) -> str:
    """Issue a token the way the platform's identity service would (CLI, tests, demo)."""
    now = datetime.now(UTC)
    claims: dict[str, object] = {"sub": str(user_id), "role": role, "iat": now, "exp": now + ttl}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    key = settings.jwt_private_key if settings.jwt_algorithm == "RS256" else settings.jwt_secret
    if not key:
        raise RuntimeError("JWT_PRIVATE_KEY is needed to mint RS256 tokens"
                           if settings.jwt_algorithm == "RS256" else "JWT_SECRET is not set")
    return jwt.encode(claims, key, algorithm=settings.jwt_algorithm)


async def verify_identity(identities: IdentityCache, principal: Principal) -> None:
    """401 `invalid_token` unless the token's subject is an active user with that role now."""
    try:
        honoured = await identities.honours(principal.user_id, principal.role)
    except PoolTimeout:
        raise  # no free connection: 503 `overloaded` (app/core/errors.py), not an outage
    except (OSError, SQLAlchemyError) as exc:
        raise ServiceUnavailable("The identity check is unavailable; retry shortly.",
                                 headers={"Retry-After": "5"}) from exc
    if not honoured:
        raise Unauthorized("The token's user is unknown, inactive or no longer has that role",
                           code="invalid_token")


async def _authenticate(request: Request, token: str) -> Principal:
    shared = request.app.state.shared
    principal = _verified(request, token)
    await verify_identity(shared.identities, principal)
    request.state.principal = principal
    return principal


# What every authenticated route can answer before its own logic runs.
AUTHENTICATION_PROBLEMS = {401: ["missing_token", "invalid_token", "token_expired"],
                           503: ["service_unavailable"]}

bearer_scheme = HTTPBearer(auto_error=False, description="JWT issued by the platform")


def _verified(request: Request, token: str) -> Principal:
    """The token's principal: as the rate limiter verified it for this request, or now."""
    cached = getattr(request.state, "verified_token", None)
    if cached is not None and cached[0] == token:
        return cached[1]
    return decode_token(token, request.app.state.shared.settings)


@declares(AUTHENTICATION_PROBLEMS)
async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A bearer token is required", code="missing_token")
    return await _authenticate(request, credentials.credentials)


@declares(AUTHENTICATION_PROBLEMS)
async def principal_from_header_or_query(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    access_token: Annotated[
        str | None,
        Query(description="The bearer token, for clients that cannot send headers "
                          "(EventSource, calendar apps)."),
    ] = None,
) -> Principal:
    token = credentials.credentials if credentials else access_token
    if not token:
        raise Unauthorized("A bearer token or access_token is required", code="missing_token")
    return await _authenticate(request, token)


def require_roles(*roles: Role, allow_query_token: bool = False):
    """Dependency: the caller's principal, which must hold one of `roles` (else 403)."""
    source = principal_from_header_or_query if allow_query_token else current_principal

    @declares({403: ["wrong_role"]})
    async def dependency(principal: Annotated[Principal, Depends(source)]) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"This route is for the role(s): {', '.join(roles)}",
                            code="wrong_role")
        return principal

    return dependency


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
CurrentMentor = Annotated[Principal, Depends(require_roles("mentor"))]
CurrentMentee = Annotated[Principal, Depends(require_roles("mentee"))]
CurrentStaff = Annotated[Principal, Depends(require_roles("director", "admin"))]
CurrentAdmin = Annotated[Principal, Depends(require_roles("admin"))]
CurrentService = Annotated[Principal, Depends(require_roles("service", "admin"))]
