"""Process configuration, read from the environment and `.env`.

The seed's variable names (`DB_HOST`, `POSTGRES_*`, `REDIS_HOST`, ...) work as they are;
the URL forms (`DATABASE_URL`, `REDIS_URL`, `BROKER_URL`) take precedence over them.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "changethis"  # noqa: S105 - the value refused in production
MIN_SECRET_KEY_LENGTH = 32
MIN_METRICS_TOKEN_LENGTH = 16


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class SmtpTls(StrEnum):
    STARTTLS = "starttls"
    SSL = "ssl"
    NONE = "none"


class S3AddressingStyle(StrEnum):
    AUTO = "auto"  # botocore decides: virtual-hosted where the bucket name allows it
    PATH = "path"  # https://endpoint/bucket/key (MinIO and most self-hosted servers)
    VIRTUAL = "virtual"  # https://bucket.endpoint/key


class OpenAIApi(StrEnum):
    CHAT_COMPLETIONS = "chat_completions"
    RESPONSES = "responses"


class ConfigurationError(RuntimeError):
    """A setting is missing or unsafe; the message says which and how to fix it."""


Seconds = Annotated[float, Field(gt=0)]
# A webhook delivery's attempts after its first (`webhook_retry_delays`).
WEBHOOK_RETRIES = 7
_ORIGIN = re.compile(r"https?://[^/\s:]+(:\d{1,5})?")
# Rate-limit windows; the SQL key-value store keeps hits for a day at most.
Window = Annotated[float, Field(gt=0, le=86400)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Environment = Environment.PRODUCTION
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    data_dir: Path = Path(".conveyor")

    # PostgreSQL: DATABASE_URL, or the seed's separate variables.
    database_url: SecretStr | None = None
    db_host: str | None = None
    db_port: int = 5432
    postgres_user: str = "postgres"
    postgres_password: SecretStr = SecretStr("")
    postgres_db: str = "conveyor"
    # Connections each pool of a process keeps, opened as needed. As many as the API's
    # thread pool has threads (anyio's 40): no request waits for a connection.
    db_pool_size: int = Field(default=40, ge=1)
    # The job protocol's hottest statements are prepared on each connection (planned
    # once); off for a pooler that does not keep them (PgBouncer in transaction mode).
    database_prepared_statements: bool = True

    # Broker: BROKER_URL, else REDIS_URL, else REDIS_HOST/REDIS_PORT.
    broker_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    redis_host: str | None = None
    redis_port: int = 6379

    # Tokens and sessions.
    access_token_minutes: int = Field(default=15, gt=0)
    refresh_token_days: int = Field(default=30, gt=0)
    jwt_issuer: str = "conveyor"
    jwt_audience: str = "conveyor-api"

    # Password reset codes.
    password_reset_minutes: int = Field(default=15, gt=0)
    password_reset_code_digits: int = Field(default=8, ge=6, le=8)
    password_reset_max_tries: int = Field(default=5, ge=1, le=5)

    # Throttling: attempts allowed per sliding window, per account and per client IP.
    login_limit_per_account: int = Field(default=10, ge=1)
    login_limit_per_ip: int = Field(default=50, ge=1)
    login_window_seconds: Window = 300.0
    # Logins to one account from clients that never logged in to it, all together, per
    # login window: guesses spread over many addresses slow down. A client that logged
    # in (or reset the password) in the last LOGIN_KNOWN_CLIENT_DAYS is not counted, so
    # the owner is never locked out by them.
    login_limit_per_account_unfamiliar: int = Field(default=20, ge=1)
    login_known_client_days: int = Field(default=30, ge=1)
    reset_limit_per_account: int = Field(default=3, ge=1)
    # Reset emails one account is sent per window, whoever asks from wherever: past it a
    # request still answers 202, and the pending code stays as it is.
    reset_emails_per_account: int = Field(default=3, ge=1)
    reset_limit_per_ip: int = Field(default=20, ge=1)
    reset_window_seconds: Window = 900.0
    register_limit_per_ip: int = Field(default=20, ge=1)
    register_window_seconds: Window = 3600.0
    invite_limit_per_ip: int = Field(default=50, ge=1)
    invite_limit_per_recipient: int = Field(default=3, ge=1)
    invite_window_seconds: Window = 86400.0
    # Team tenants one user may create per day: each one could send every address its own
    # invitations, so this bounds what one account can make the mail server send.
    tenant_limit_per_user: int = Field(default=10, ge=1)
    # How long an invitation stays open.
    invitation_days: int = Field(default=7, ge=1)

    # Email. With no SMTP_HOST, dev and test write messages to the outbox folder.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    # starttls (upgrade a plain connection), ssl (implicit TLS, port 465) or none.
    smtp_tls: SmtpTls = SmtpTls.STARTTLS
    smtp_timeout_seconds: Seconds = 20.0
    email_from: str = "Conveyor <no-reply@localhost>"

    # HTTP.
    max_request_bytes: int = Field(default=1024 * 1024, gt=0)
    # Open event streams (SSE) one caller (a login or an API key) may hold on one API
    # process; each polls the database while it is open.
    event_streams_per_caller: int = Field(default=10, ge=1)
    # Browser origins allowed to call the API (CORS), comma-separated, e.g.
    # `https://app.example.com,https://admin.example.com`. Empty: no cross-origin calls.
    # Credentials are bearer tokens in a header, never cookies, so none are allowed.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Job protocol: see docs/lifecycle.md. A worker's heartbeat extends the lease every
    # third of it, so a dead worker's job is taken back within a lease and one
    # reconciler round.
    job_lease_seconds: Seconds = 30.0
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_base_seconds: Seconds = 2.0
    retry_backoff_max_seconds: Seconds = 300.0
    reconcile_interval_seconds: Seconds = 5.0
    # A job never published (publish failed) is re-sent after this grace period.
    unpublished_grace_seconds: Seconds = 15.0
    # A queued job's message counts as lost (and is re-sent) when it was published
    # longer ago than this and the broker holds fewer messages for its queue than there
    # are jobs published after it: see docs/lifecycle.md.
    lost_message_grace_seconds: Seconds = 30.0
    # Redis broker only: a message a worker took and never acknowledged (the worker
    # died) is delivered again after this long. Longer than the longest job's time
    # limit, or a job still running is delivered again (its claim turns the copy away).
    broker_visibility_timeout_seconds: Seconds = 4200.0

    # Fair capacity: see docs/capacity.md. A tenant's jobs published or running at once,
    # per queue; the rest wait in PostgreSQL and are published as its slots free, the
    # tenants with jobs waiting served in turn. 0: no cap (one first-come line). A
    # tenant's own cap (`tenants.max_concurrency`, set by an operator) replaces it.
    tenant_concurrency: int = Field(default=10, ge=0)
    # A tenant's queued jobs (waiting or published, all queues): one more is refused
    # with 429 queued_jobs_quota_exceeded, and nothing is stored. 0: no quota.
    tenant_max_queued_jobs: int = Field(default=10_000, ge=0)
    # Jobs a tenant may submit per sliding window; past it 429 submit_rate_exceeded.
    # 0: no limit.
    tenant_submit_limit: int = Field(default=1200, ge=0)
    tenant_submit_window_seconds: Window = 60.0

    # Webhooks: see docs/webhooks.md. Loopback and private addresses are refused unless
    # this is true (dev and tests); link-local and cloud metadata addresses always are.
    # http:// URLs are accepted only outside production.
    webhook_allow_private_targets: bool = False
    webhook_connect_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 5.0
    # The whole request, the answer's body included.
    webhook_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 15.0
    # The waits before the second to eighth attempts, each with ±10 % jitter.
    webhook_retry_delays: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    # An endpoint whose every attempt has failed for this long is disabled, and its
    # tenant's owners and admins are emailed.
    webhook_disable_after_seconds: Seconds = 5 * 86400.0
    # After a rotation the old secret signs beside the new one for this long.
    webhook_secret_grace_seconds: Seconds = 86400.0
    # A result larger than this (as JSON) is left out of the event: `result_omitted`
    # says so, and GET /api/v1/jobs/{id} has it.
    webhook_max_result_bytes: int = Field(default=65536, ge=0)
    webhook_max_endpoints: int = Field(default=20, ge=1)

    flower_basic_auth: SecretStr | None = None

    # Prometheus: GET /metrics asks for `Authorization: Bearer <METRICS_TOKEN>`. With no
    # token it answers only in dev and test, and is off (404) in production.
    metrics_token: SecretStr | None = None
    # False: no /metrics, and requests are not counted.
    metrics_enabled: bool = True
    # Tenants named in conveyor_tenant_jobs (the busiest); the rest are `other`.
    metrics_top_tenants: int = Field(default=10, ge=0, le=1000)

    # Object storage: any S3-compatible service (DigitalOcean Spaces, AWS S3, MinIO). With
    # no bucket, dev and test keep objects on local disk under data_dir; production refuses.
    s3_endpoint_url: str | None = None  # None: AWS's own endpoint for the region
    s3_region: str = "us-east-1"  # Spaces: the datacenter, e.g. "nyc3"
    do_spaces_bucket: str | None = None
    # None: boto3's own credential chain (environment, instance role, ~/.aws).
    do_spaces_key: SecretStr | None = None
    do_spaces_secret: SecretStr | None = None
    s3_addressing_style: S3AddressingStyle = S3AddressingStyle.AUTO
    s3_connect_timeout_seconds: Seconds = 5.0
    s3_read_timeout_seconds: Seconds = 60.0
    # Attempts per request, the first included (botocore's "standard" retry mode).
    s3_max_attempts: int = Field(default=5, ge=1, le=20)
    # Multipart upload part size: S3 refuses parts under 5 MiB (but the last), and the
    # streaming upload holds one part in memory.
    s3_part_size_mib: int = Field(default=8, ge=5, le=64)
    max_upload_bytes: int = Field(default=1 << 30, gt=0)
    # What one tenant's uploads and the files derived from them may take in storage;
    # 0 for no limit. Past it, uploads and their processing are refused.
    storage_quota_bytes: int = Field(default=10 << 30, ge=0)
    # Lifetime of presigned upload and download URLs; SigV4 allows at most 7 days.
    upload_url_seconds: int = Field(default=900, ge=1, le=7 * 24 * 3600)

    # Agent runs: OpenAI, or any OpenAI-compatible server at OPENAI_BASE_URL. With
    # neither a key nor a base URL, agent runs are refused (503 agents_not_configured).
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = Field(default="gpt-4.1-mini", min_length=1, max_length=200)
    # Chat Completions is what most OpenAI-compatible servers speak.
    openai_api: OpenAIApi = OpenAIApi.RESPONSES
    # Send traces to the OpenAI dashboard: off unless asked for.
    openai_tracing: bool = False
    # Let OpenAI keep responses (the tenant's documents among them): off unless asked for.
    # Reasoning models on the Responses API need it to refer back to their reasoning.
    openai_store: bool = False
    openai_timeout_seconds: Seconds = 120.0
    # Retries of one model request by the client (it honours Retry-After); past these,
    # the whole run is retried as a job attempt.
    openai_max_retries: int = Field(default=2, ge=0, le=10)
    agent_max_turns: int = Field(default=10, ge=1, le=50)
    # Wall-clock limit of one run (one attempt); the job kind's hard limit is higher.
    agent_run_timeout_seconds: float = Field(default=600.0, gt=0, le=840)

    @field_validator(
        "s3_endpoint_url",
        "do_spaces_bucket",
        "do_spaces_key",
        "do_spaces_secret",
        "openai_api_key",
        "openai_base_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `DO_SPACES_BUCKET=` in a .env means "not set", not a bucket named "".
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(raw, str) and not raw.strip():
            return None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("webhook_retry_delays", mode="before")
    @classmethod
    def _delays(cls, value: object) -> object:
        if isinstance(value, str):
            return [float(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("webhook_retry_delays")
    @classmethod
    def _one_per_retry(cls, delays: list[float]) -> list[float]:
        retries = WEBHOOK_RETRIES
        if len(delays) != retries or any(d < 0 for d in delays):
            raise ValueError(f"must be {retries} comma-separated non-negative seconds")
        return delays

    @field_validator("cors_origins")
    @classmethod
    def _origins_only(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port], no path "
                    "(or * for any origin)"
                )
        return origins

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker compose passes `METRICS_TOKEN=` when .env leaves it out.
        return None if value == "" else value

    @field_validator("metrics_token")
    @classmethod
    def _long_enough(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value()) < MIN_METRICS_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_METRICS_TOKEN_LENGTH} characters")
        return token

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            key = self.secret_key.get_secret_value()
            if key == DEFAULT_SECRET_KEY or len(key) < MIN_SECRET_KEY_LENGTH:
                raise ConfigurationError(
                    "SECRET_KEY is unset, the default, or shorter than "
                    f"{MIN_SECRET_KEY_LENGTH} characters; refusing to start in production. "
                    "Generate one with: "
                    'python -c "import secrets; print(secrets.token_urlsafe(48))"'
                )
        return self

    @property
    def is_dev(self) -> bool:
        return self.environment is not Environment.PRODUCTION

    @property
    def agents_configured(self) -> bool:
        """A model to talk to: OpenAI with a key, or a compatible server by URL."""
        return self.openai_api_key is not None or self.openai_base_url is not None

    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            url = self.database_url.get_secret_value()
        elif self.db_host is not None:
            password = quote(self.postgres_password.get_secret_value(), safe="")
            user = quote(self.postgres_user, safe="")
            url = f"postgresql://{user}:{password}@{self.db_host}:{self.db_port}/{self.postgres_db}"
        else:
            raise ConfigurationError(
                "No database configured: set DATABASE_URL (or DB_HOST and POSTGRES_*), "
                "or run `conveyor dev` for the embedded default."
            )
        return psycopg2_url(url)

    def celery_broker_url(self) -> str:
        if self.broker_url is not None:
            return self.broker_url.get_secret_value()
        if (redis_url := self.kv_redis_url()) is not None:
            return redis_url
        if self.is_dev:
            return "filesystem://"
        raise ConfigurationError(
            "No broker configured: set BROKER_URL or REDIS_URL (or REDIS_HOST/REDIS_PORT)."
        )

    def kv_redis_url(self) -> str | None:
        """Redis for reset codes and rate limits; None means the SQL store."""
        if self.redis_url is not None:
            return self.redis_url.get_secret_value()
        if self.redis_host is not None:
            return f"redis://{self.redis_host}:{self.redis_port}/0"
        return None

    @property
    def outbox_dir(self) -> Path:
        """Where mail goes when no SMTP server is configured (dev and test only)."""
        return self.data_dir.resolve() / "outbox"

    @property
    def broker_dir(self) -> Path:
        """Folders of the `filesystem://` broker (embedded default only)."""
        return self.data_dir.resolve() / "broker"

    @property
    def storage_dir(self) -> Path:
        """Objects on local disk when no bucket is configured (dev and test only)."""
        return self.data_dir.resolve() / "storage"

    @property
    def s3_part_size_bytes(self) -> int:
        return self.s3_part_size_mib * 1024 * 1024


def psycopg2_url(url: str) -> str:
    """The same URL with the psycopg2 driver named: one driver for every process."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    raise ConfigurationError("DATABASE_URL must be a postgresql:// URL")


@cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
