"""Domain errors and their RFC 9457 problem responses.

Services raise `DomainError` subclasses (each with a stable `code` and HTTP status); one
handler turns them into `application/problem+json`. Constraint violations that reach the
handler are mapped to codes by constraint name, so the database stays the judge.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.dberrors import db_error_info

log = structlog.get_logger("app.core.errors")

PROBLEM_JSON = "application/problem+json"


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, *, code: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        self.headers = headers
        self.extra = extra


class Unauthorized(DomainError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kw: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **kw)


class Forbidden(DomainError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    status, code, title = 409, "conflict", "Conflict"


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "Invalid status transition"


class DoubleBooking(Conflict):
    code, title = "double_booking", "The mentor or the mentee is already booked at that time"


class CapacityExceeded(Conflict):
    code, title = "capacity_exceeded", "Capacity exceeded"


class OutsideAvailability(Conflict):
    code, title = "outside_availability", "Outside the mentor's availability"


class Unprocessable(DomainError):
    status, code, title = 422, "validation_error", "Invalid request"


class TooManyRequests(DomainError):
    status, code, title = 429, "rate_limited", "Too many requests"


class ServiceUnavailable(DomainError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class Overloaded(ServiceUnavailable):
    """The process is at capacity (app/core/admission.py) or its DB pool had no connection
    within DB_POOL_TIMEOUT_SECONDS: answered at once, with Retry-After."""

    code, title = "overloaded", "Overloaded"


# Constraint name -> (status, code, title). Anything unlisted is a generic 409 `conflict`.
CONSTRAINT_PROBLEMS: dict[str, tuple[int, str, str]] = {
    "ex_sessions_mentor_overlap": (409, "double_booking", DoubleBooking.title),
    "ex_sessions_mentee_overlap": (409, "double_booking", DoubleBooking.title),
    "uq_assignments_active_mentee": (409, "already_assigned", "The mentee already has a mentor"),
    "uq_session_feedback_session_id": (409, "feedback_exists", "Feedback was already given"),
    "uq_mission_reviews_submission_id": (409, "already_reviewed", "Already reviewed"),
    "uq_users_email": (409, "email_taken", "Another user has this email"),
}
SQLSTATE_PROBLEMS: dict[str, tuple[int, str, str]] = {
    "23P01": (409, "double_booking", DoubleBooking.title),
    "23505": (409, "conflict", "Conflicts with an existing record"),
    "23503": (409, "reference_not_found", "A referenced record does not exist"),
    "23514": (422, "constraint_violation", "A value breaks a rule of the data"),
    "42501": (404, "not_found", "Not found"),  # RLS WITH CHECK refused: not the caller's
}


# SQLSTATE class 22 (data exception: a value out of range, a bad encoding, an unknown time
# zone name, ...) reaching the handler means a value from the request got past validation:
# the request is invalid, not the service broken.
DATA_EXCEPTION = (422, "validation_error", "Invalid request")


def problem_for_db_error(exc: DBAPIError) -> tuple[int, str, str] | None:
    sqlstate, constraint = db_error_info(exc)
    if constraint and constraint in CONSTRAINT_PROBLEMS:
        return CONSTRAINT_PROBLEMS[constraint]
    if sqlstate and sqlstate.startswith("22"):
        return DATA_EXCEPTION
    return SQLSTATE_PROBLEMS.get(sqlstate or "")


def problem(status: int, code: str, title: str, detail: str | None = None,
            request: Request | None = None, headers: dict[str, str] | None = None,
            **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://errors.mentorship.dev/{code}",
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


UNPARSABLE_BODY = "There was an error parsing the body"  # fastapi.routing, on decode errors
HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 413: "payload_too_large",
    415: "unsupported_media_type", 429: "too_many_requests",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem(exc.status, exc.code, exc.title, exc.detail, request, exc.headers,
                       **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return problem(422, "validation_error", "Invalid request",
                       "The request body or query is invalid.", request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.detail == UNPARSABLE_BODY:
            # FastAPI's answer to a JSON body that is not even text (invalid UTF-8): bad
            # input like any other malformed JSON, so the same documented 422.
            return problem(422, "validation_error", "Invalid request",
                           "The request body or query is invalid.", request,
                           errors=[{"loc": ["body"], "msg": "The body is not UTF-8 JSON",
                                    "type": "json_invalid"}])
        code = HTTP_CODES.get(exc.status_code, "http_error")
        title = code.replace("_", " ").capitalize()
        detail = exc.detail if isinstance(exc.detail, str) else title
        return problem(exc.status_code, code, title, detail, request,
                       getattr(exc, "headers", None))

    @app.exception_handler(DBAPIError)
    async def _db(request: Request, exc: DBAPIError) -> JSONResponse:
        mapped = problem_for_db_error(exc)
        if mapped is None:
            return await _unexpected(request, exc)
        status, code, title = mapped
        return problem(status, code, title, None, request)

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        # No DB connection within DB_POOL_TIMEOUT_SECONDS: overload, not a bug; the same
        # answer as the admission limit's (app/core/admission.py).
        retry_after = request.app.state.shared.settings.overload_retry_after_seconds
        return problem(503, Overloaded.code, Overloaded.title,
                       "No database connection was free in time; retry after the delay in "
                       "Retry-After.", request, headers={"Retry-After": str(retry_after)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", request_id=_request_id(request), path=request.url.path)
        return problem(500, "internal_error", "Internal server error",
                       "An unexpected error occurred. Quote the request id when reporting it.",
                       request, request_id=_request_id(request))
