"""Settings, read once from the environment (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from app.models.work_item import Priority


class SlaPolicy(BaseSettings):
    """SLA for one kind of work item: starting priority and window length."""

    priority: Priority
    hours: int = Field(gt=0)


DEFAULT_SLA: dict[str, SlaPolicy] = {
    "mission_review": SlaPolicy(priority="high", hours=48),
    "risk_assessment": SlaPolicy(priority="normal", hours=72),
    "goal_feedback": SlaPolicy(priority="normal", hours=168),
    "session_followup": SlaPolicy(priority="low", hours=24),
}

APP_DB_ROLE = "mentorship_app"  # API requests: no BYPASSRLS, RLS decides what it sees
WORKER_DB_ROLE = "mentorship_worker"  # arq workers acting as the system: BYPASSRLS
# An API request switches (SET LOCAL ROLE) to the NOLOGIN role of its identity, granted to
# APP_DB_ROLE; RLS and the users trigger trust only that (migration 0017).
IDENTITY_DB_ROLES = {role: f"mentorship_{role}"
                     for role in ("mentee", "mentor", "director", "admin", "service")}
# Public development defaults: accepted only with ENVIRONMENT=development (see
# `Settings.insecure_settings`); anywhere else they are refused like a missing key.
DEV_JWT_SECRET = "dev-secret-change-me-0123456789abcdef"
DEV_ADMIN_SECRET_KEY = "dev-admin-session-key-change-me"
MIN_SECRET_BYTES = 32  # HS256 keys shorter than the hash output are brute-forceable


class InsecureSettings(RuntimeError):
    """Outside development: a process refuses to start with a missing or public key."""


def cron_period_ok(seconds: int) -> bool:
    """arq fires cron jobs on second/minute/hour sets: a period must divide one of them."""
    return (0 < seconds < 60 and 60 % seconds == 0
            or seconds < 3600 and seconds % 60 == 0 and 3600 % seconds == 0
            or seconds <= 86400 and seconds % 3600 == 0 and 86400 % seconds == 0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Production unless said otherwise: a deployment that forgets to set it fails closed.
    # `mentorship dev` sets `development`; the test harness `test` (with explicit secrets).
    environment: Literal["development", "test", "production"] = "production"

    # Postgres. DATABASE_URL names the server and database with an account that may run
    # migrations. The API and the workers connect with their own roles (created by the
    # migrations) unless APP_DATABASE_URL / WORKER_DATABASE_URL say otherwise.
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/mentorship"
    app_database_url: str | None = None
    worker_database_url: str | None = None
    app_db_password: str | None = None
    worker_db_password: str | None = None
    # Connections kept open: as many as the admission limit lets requests in at once
    # (max_in_flight_requests), so admitted requests never open and close an overflow
    # connection each (a new backend, its catalogue and plan caches: at 16 clients, 0.1 new
    # connection per request and ~0.7 ms more API CPU per event with 10 + 10). The overflow
    # serves SSE and the probes; 16 + 4 keeps the old 20 at most per process.
    db_pool_size: int = 16
    db_max_overflow: int = 4
    # Longest wait of an API request for a pooled connection; then 503 `overloaded`
    # (app/core/errors.py) rather than SQLAlchemy's default 30 s queue.
    db_pool_timeout_seconds: float = Field(2.0, gt=0)

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Prefix of every Redis key the deployment writes, arq's included (queue, jobs, results,
    # in-progress, retries, health check, cron ticks), so several deployments (or test runs)
    # can share one Redis database.
    redis_prefix: str = "mentorship:"

    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    # No default outside development (where DEV_JWT_SECRET fills in): refused at startup.
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_private_key: str | None = None  # only for `mentorship token` with RS256
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # How long a process trusts what it read about a user's role and active flag: a demoted
    # or deactivated user loses access within this time (app/core/identity.py).
    auth_cache_seconds: float = Field(60.0, ge=0)

    sla_policy: dict[str, SlaPolicy] = Field(default_factory=lambda: dict(DEFAULT_SLA))
    goal_feedback_tiers: list[str] = ["7"]

    # Video links: Jitsi-style rooms unless Zoom server-to-server OAuth is configured.
    video_base_url: str = "https://meet.jit.si"
    zoom_account_id: str | None = None
    zoom_client_id: str | None = None
    zoom_client_secret: str | None = None
    zoom_api_base_url: str = "https://api.zoom.us/v2"
    zoom_oauth_url: str = "https://zoom.us/oauth/token"
    video_timeout_seconds: float = 10.0  # per call to the video provider

    # Sessions: how far ahead a booking may start (also keeps week arithmetic in range).
    session_booking_horizon_days: int = Field(730, gt=0)
    calendar_past_days: int = Field(90, ge=0)  # the iCalendar feed's look-back
    # Slots are offered on this grid of the mentor's local wall-clock time (must divide a day).
    slot_step_minutes: int = Field(15, ge=5, le=240)
    # A mentee may reschedule or cancel only this long before the start (409 too_late_to_change).
    session_change_notice_hours: int = Field(24, ge=0, le=720)
    # How often workers send due reminders and open due follow-ups.
    session_timers_interval_seconds: int = Field(60, gt=0)
    # Absolute base of URLs handed out (calendar subscriptions); unset: the request's own.
    public_base_url: str | None = None

    # Outbound webhooks and real-time streams.
    webhook_timeout_seconds: float = 10.0
    webhook_max_age_hours: int = 25  # retried with backoff for at least a day, then failed
    # Loopback and private webhook destinations (app/services/events/destinations.py);
    # unset: allowed only with ENVIRONMENT=development. Link-local and cloud metadata
    # addresses are refused whatever this says.
    webhook_allow_private: bool | None = None
    stream_maxlen: int = 1000  # per-user Redis stream, approximate trim
    # Set on a user's stream and its epoch meta together by every append and every open
    # (app/core/streams.py); 0: they never expire. Default 7 days: a user who never
    # connects (most mentees and directors receive events) costs nothing once their stream
    # has been idle that long; a later resume then gets a fresh snapshot (a new epoch).
    stream_ttl_seconds: int = Field(7 * 24 * 3600, ge=0)
    sse_ping_seconds: int = 15
    sse_retry_ms: int = 3000
    # Open SSE streams are fed by a few readers per process, each one Redis connection
    # blocking on XREAD over up to `sse_keys_per_reader` users' streams
    # (app/services/live/hub.py). Past `sse_max_streams` per process a new stream gets 503.
    sse_max_streams: int = 10_000
    sse_keys_per_reader: int = Field(50, gt=0)
    sse_redis_client_name: str = "mentorship-sse"  # CLIENT SETNAME on the readers' connections
    sse_block_seconds: float = 5.0  # a reader's XREAD BLOCK (new keys wake it sooner)
    sse_batch: int = 100  # entries per key and XREAD
    sse_max_pending: int = 1000  # entries queued for one stream; past it, it ends (resumable)
    sse_snapshot_concurrency: int = 5  # snapshots at once per process: spares the DB pool
    sse_send_timeout_seconds: float = 30.0  # a client that stops reading is dropped

    # Inbound events (POST /api/v1/events).
    events_max_batch: int = 500
    # Outbox relay: claims `relay_batch_size` rows for `relay_lease_seconds`; an idle relay
    # polls every `relay_poll_seconds`; a failed publish (Redis down) is retried after a
    # backoff capped at `relay_retry_max_seconds`. Per (event, user) markers that keep a
    # re-published event out of a stream live `relay_dedupe_ttl_seconds` (must exceed the lease).
    relay_batch_size: int = 200
    relay_lease_seconds: float = 30.0
    relay_poll_seconds: float = 0.05
    relay_retry_max_seconds: float = 5.0
    relay_dedupe_ttl_seconds: int = 900
    # Webhook deliveries: exponential backoff with jitter between attempts.
    webhook_batch_size: int = 20
    webhook_poll_seconds: float = 0.5
    webhook_backoff_base_seconds: float = 5.0
    webhook_backoff_max_seconds: float = 3600.0
    # Workers (app/workers). Each worker runs the outbox relay and the webhook deliveries as
    # loops of its own beside its jobs; at shutdown (and at the end of `--burst`) it stops
    # them and drains the outbox and the due deliveries once, for at most this long.
    worker_drain_seconds: float = Field(20.0, ge=0)
    # A worker records its health (`arq ... --check`) this often; the record lives one second
    # longer, so a dead worker fails the check within this many seconds.
    worker_health_check_seconds: int = Field(20, ge=1, le=60)
    # Cron periods in seconds; each must divide a minute, an hour or a day.
    sla_sweep_interval_seconds: int = 300
    capacity_check_interval_seconds: int = 3600
    programme_metrics_interval_seconds: int = 60
    match_recovery_interval_seconds: int = 15  # the sweep for runs whose worker died
    # Retention (app/services/compliance/retention.py): rows older than this many days go,
    # in batches of `retention_batch` rows (one short transaction each), once a day.
    retention_interval_seconds: int = 86400
    retention_inbox_days: int = Field(30, ge=1)
    retention_outbox_days: int = Field(7, ge=1)  # published rows only
    retention_webhook_attempts_days: int = Field(30, ge=1)
    retention_audit_days: int = Field(730, ge=1)
    # A dry run never published: its proposals go this long after it finished (the latest
    # finished run excepted: the waiting list reads its reasons).
    retention_matching_dry_runs_days: int = Field(30, ge=1)
    retention_batch: int = Field(5000, ge=1, le=100_000)

    # Auto-matcher (app/services/matching/engine.py and fit.py). The fit of a mentee with a
    # mentor is the weighted sum of four terms, each in [0, 1], with the weights normalised
    # to sum 1, plus a preference boost:
    #   specialty = share of the mentee's topics (interests and preferred specialties) among
    #               the mentor's specialties;
    #   timezone  = 1 - gap / 12, gap = the largest UTC offset difference in hours over the
    #               year (January and July: both sides' DST), on the 24 h circle (0..12);
    #   load      = 1 - active mentees / max mentees (at the start of the run);
    #   language  = 1 if they share a language (primary subtag), or the mentee names none;
    #               0.5 if the mentor lists none (unknown); 0 otherwise;
    #   boost     = match_preference_boost if the mentor is one the mentee prefers, plus
    #               match_preference_boost x share of the mentee's preferred specialties
    #               the mentor covers (so a fit lies in [0, 1 + 2 x boost]).
    # A director may pass other weights for one run (they are normalised the same way).
    # Each mentee's `match_top_k` best mentors (plus a catch-all route, so nobody placeable
    # stays out) go to the min-cost flow solver.
    match_weight_specialty: float = Field(0.5, ge=0)
    match_weight_timezone: float = Field(0.2, ge=0)
    match_weight_load: float = Field(0.15, ge=0)
    match_weight_language: float = Field(0.15, ge=0)
    match_preference_boost: float = Field(0.1, ge=0, le=1)
    match_top_k: int = Field(30, ge=1)
    match_block_rows: int = Field(4096, ge=1)  # mentees per NumPy block of the fit matrix
    # A run waits this long for another run's lock, then ends as `skipped`.
    match_lock_timeout_seconds: float = Field(30.0, gt=0)
    # A worker running a matcher run renews its lease every `match_heartbeat_seconds`; a
    # run whose lease is older than `match_lease_seconds` (its worker died) is re-run by
    # the sweep (every `match_recovery_interval_seconds`) until `match_max_attempts` tries,
    # then marked `failed`.
    match_heartbeat_seconds: float = Field(5.0, gt=0)
    match_lease_seconds: float = Field(30.0, gt=0)
    match_max_attempts: int = Field(3, ge=1, le=10)
    # The SLA sweep works through a backlog in batches of this many items (one transaction
    # each); a regular 5-minute sweep is a single short batch.
    sla_sweep_batch_size: int = Field(20_000, ge=1)
    # After a booking, the capacity check runs this much later (the booking has committed
    # by then; bookings in between share the job).
    capacity_check_delay_seconds: float = Field(5.0, ge=0)

    # Rate limits (app/core/ratelimit.py): requests per minute per token subject, for
    # people and for role `service`; per client IP only behind `trusted_proxies` (CIDRs of
    # the load balancers whose X-Forwarded-For is believed). 0 turns a limit off.
    rate_limit_per_minute: int = Field(600, ge=0)
    rate_limit_service_per_minute: int = Field(60_000, ge=0)
    rate_limit_ip_per_minute: int = Field(1200, ge=0)
    trusted_proxies: list[str] = []
    rate_limit_redis_timeout_seconds: float = Field(0.25, gt=0)  # then the limiter fails open
    sse_max_streams_per_user: int = Field(5, ge=1)  # per process; beyond it: 429

    # Operations (README "Operations").
    log_level: str = "INFO"
    cors_origins: list[str] = []  # the SPA's origins, e.g. ["https://app.example.com"]
    max_body_bytes: int = Field(1_048_576, gt=0)  # larger request bodies: 413
    # Admission (app/core/admission.py): requests one API process works on at once (0: no
    # limit; open SSE streams and probes not counted), how long one more may wait for a
    # slot, then 503 `overloaded` with this Retry-After (also on a DB pool timeout). An
    # admitted request's latency is about in-flight / throughput (Little's law): 16 at the
    # ~200 req/s of one process is ~80 ms; one process gains no throughput past a handful.
    # The wait is short so that a refusal comes within milliseconds (issue 23): at ~300
    # req/s a slot frees every ~3 ms, so 5 ms still lets a brief burst through.
    max_in_flight_requests: int = Field(16, ge=0)
    admission_queue_wait_ms: int = Field(5, ge=0)
    overload_retry_after_seconds: int = Field(1, ge=1)
    # Admin UI (/admin): signs its session cookie. Missing, the public development key or
    # shorter than MIN_SECRET_BYTES: the admin UI is disabled outside development (the API
    # still starts); in development a missing key is a random one per process.
    admin_secret_key: str | None = None
    # Signs list cursors (app/core/pagination.py); unset: derived from JWT_SECRET (else
    # ADMIN_SECRET_KEY). Set it with RS256, or cursors only work on the process that made them.
    cursor_secret: SecretStr | None = None
    # Shared password for the admin UI's email + password login (admin and director users
    # only). No default: unset, only a platform-issued JWT pasted as the password logs in.
    admin_ui_password: SecretStr | None = None
    admin_session_max_age_seconds: int = Field(8 * 3600, gt=0)
    # Login lockout (app/admin/security/lockout.py): this many failed logins for one account,
    # or from one client, lock it for ADMIN_LOCKOUT_SECONDS.
    admin_login_max_failures: int = Field(5, ge=1)
    admin_login_max_failures_per_client: int = Field(20, ge=1)
    admin_lockout_seconds: int = Field(900, ge=1)
    # When set, /metrics on the API answers only `Authorization: Bearer <METRICS_TOKEN>`.
    metrics_token: SecretStr | None = None
    # The worker's own /metrics port: job series, and (on the one worker holding the
    # exporter lease) the deployment-wide series. Unset: no server in the worker.
    worker_metrics_port: int | None = None
    # API processes compete for the exporter lease too, ahead of workers, so the API's
    # GET /metrics (the contract's) serves the programme metrics; false: workers only.
    api_metrics_exporter: bool = True
    # How often the exporter renews its lease and re-reads the deployment-wide values.
    exporter_refresh_seconds: float = Field(15.0, gt=0)

    @field_validator("database_url", "app_database_url", "worker_database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str | None) -> str | None:
        if value and value.startswith(("postgres://", "postgresql://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        return value

    @field_validator("slot_step_minutes")
    @classmethod
    def _step_divides_a_day(cls, value: int) -> int:
        if 1440 % value:
            raise ValueError("slot_step_minutes must divide 1440 (a day)")
        return value

    @field_validator("sla_sweep_interval_seconds", "capacity_check_interval_seconds",
                     "programme_metrics_interval_seconds", "retention_interval_seconds",
                     "match_recovery_interval_seconds",
                     "session_timers_interval_seconds")
    @classmethod
    def _cron_period(cls, value: int) -> int:
        if not cron_period_ok(value):
            raise ValueError("a cron period must divide a minute, an hour or a day")
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _prefix_not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("REDIS_PREFIX must not be empty")
        return value

    @model_validator(mode="after")
    def _development_jwt_secret(self) -> Settings:
        if self.environment == "development" and self.jwt_secret is None:
            self.jwt_secret = DEV_JWT_SECRET
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @model_validator(mode="after")
    def _some_match_weight(self) -> Settings:
        if (self.match_weight_specialty + self.match_weight_timezone + self.match_weight_load
                + self.match_weight_language) <= 0:
            raise ValueError("at least one match_weight_* must be positive")
        return self

    def role_url(self, role: str, password: str | None) -> str:
        url = make_url(self.database_url).set(username=role, password=password)
        return url.render_as_string(hide_password=False)

    @property
    def api_db_url(self) -> str:
        return self.app_database_url or self.role_url(APP_DB_ROLE, self.app_db_password)

    @property
    def worker_db_url(self) -> str:
        return self.worker_database_url or self.role_url(WORKER_DB_ROLE, self.worker_db_password)

    @property
    def webhooks_may_reach_private(self) -> bool:
        if self.webhook_allow_private is not None:
            return self.webhook_allow_private
        return self.environment == "development"

    def insecure_settings(self) -> list[str]:
        """Why this configuration must not serve (empty: it may). Development accepts all."""
        if self.environment == "development":
            return []
        if self.jwt_algorithm == "RS256":
            return [] if _is_rsa_public_key(self.jwt_public_key) else [
                "JWT_ALGORITHM=RS256 needs JWT_PUBLIC_KEY, a PEM RSA public key"]
        if not self.jwt_secret:
            return ["JWT_SECRET is not set"]
        if self.jwt_secret == DEV_JWT_SECRET:
            return ["JWT_SECRET is the public development secret"]
        if len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            return [f"JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes"]
        return []

    def require_secure(self, process: str) -> None:
        """Fail closed: raise `InsecureSettings` unless the process may start."""
        problems = self.insecure_settings()
        if problems:
            raise InsecureSettings(
                f"{process} refuses to start with ENVIRONMENT={self.environment}: "
                + "; ".join(problems) + " (ENVIRONMENT=development accepts the defaults)")

    @property
    def admin_key_usable(self) -> bool:
        """Whether ADMIN_SECRET_KEY may sign admin sessions (else /admin lets nobody in)."""
        if self.environment == "development":
            return True
        key = self.admin_secret_key
        return bool(key) and key != DEV_ADMIN_SECRET_KEY and len(key.encode()) >= MIN_SECRET_BYTES

    def sla(self, kind: str) -> SlaPolicy:
        return self.sla_policy.get(kind) or DEFAULT_SLA[kind]


def _is_rsa_public_key(pem: str | None) -> bool:
    if not pem:
        return False
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return isinstance(key, RSAPublicKey) and key.key_size >= 2048


@lru_cache
def get_settings() -> Settings:
    return Settings()
