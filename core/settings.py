"""All configuration in one place, read from the environment (prefix ``SMARTWATER_``) and ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

TSDB_SCHEMES = ("sqlite", "influxdb", "influxdb2")
DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2")


class Settings(BaseSettings):
    # An empty variable is an unset one: compose passes optional settings as ${VAR:-}, and SMARTWATER_SMTP_PORT=
    # must mean "the default port", not "not a number".
    model_config = SettingsConfigDict(env_prefix="SMARTWATER_", env_file=".env", extra="ignore",
                                      env_ignore_empty=True)

    data_dir: Path = Path("data")

    # Broker. mqtt:// or mqtts://, user and password allowed: mqtt://user:pass@host:1883
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    # The broker account, kept out of the URL so a secret needs no percent-encoding (deploy: one per service,
    # `smartwater devices credentials`); when set they win over the URL's user and password.
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # MQTT 5 lets ingest raise Receive Maximum so batching is not starved by the broker's
    # in-flight window; the embedded broker (amqtt) speaks 3.1.1 only.
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    mqtt_client_prefix: str = "smartwater"
    mqtt_receive_maximum: int = Field(default=20000, ge=1, le=65535)
    mqtt_keepalive_s: int = Field(default=30, ge=5)

    # Time-series store: sqlite:///path | influxdb://host:port/database | influxdb2://host:port/bucket?org=ORG
    tsdb_url: str | None = None
    influx_token: SecretStr | None = None
    # Registry DB: sqlite:///path | postgresql://user@host/db
    db_url: str | None = None

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    display_timezone: str = "Asia/Shanghai"

    ingest_batch_size: int = Field(default=5000, ge=1)
    # amqtt drops an unacknowledged QoS 1 delivery after 5 s, so the flush timer must stay well below that.
    ingest_flush_interval_s: float = Field(default=0.2, gt=0, le=2.0)
    ingest_max_payload_bytes: int = Field(default=256 * 1024, ge=256)
    ingest_max_future_s: float = Field(default=300.0, ge=0)
    # Scale-out: workers with the same group share water/# through $share/{group}/…; each needs its own id.
    ingest_shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    ingest_worker_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    # /metrics and /healthz of the ingest process (`smartwater run ingest`); 0 turns them off.
    ingest_metrics_host: str = "127.0.0.1"
    ingest_metrics_port: int = Field(default=9108, ge=0, le=65535)
    # /metrics and /healthz of the alert process (`smartwater run alerts`); 0 turns them off.
    alerts_metrics_host: str = "127.0.0.1"
    alerts_metrics_port: int = Field(default=9109, ge=0, le=65535)

    alerts_reservoir_design_margin_m: float = Field(default=1.0, ge=0)
    # A cleared alert whose condition returns within this much data time is reopened, not duplicated.
    alerts_reopen_s: float = Field(default=1800.0, ge=0)
    webhook_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_timeout_s: float = Field(default=5.0, gt=0)

    district_seed: int = 20260628
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    # --- Notifications, re-notification and reports (alerts/notify.py, alerts/channels.py, alerts/scheduler.py) ---
    # Webhooks: body signed with HMAC-SHA256 (header X-Smartwater-Signature: sha256=<hex>) when a secret is set.
    webhook_secret: SecretStr | None = None
    # Attempts per webhook delivery; retry delays grow 1 s, 2 s, 4 s … (±20 % jitter), capped.
    webhook_attempts: int = Field(default=5, ge=1, le=20)
    webhook_retry_delay_s: float = Field(default=1.0, ge=0)
    webhook_retry_max_delay_s: float = Field(default=60.0, ge=0)
    # Threads sending notifications, so one slow peer does not hold up the others.
    notify_workers: int = Field(default=4, ge=1, le=32)
    # E-mail to the on-duty roster over SMTP; off while smtp_host is unset.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field(default="smartwater@localhost", pattern=r"^[^@\s]+@[^@\s]+$")
    smtp_starttls: bool = True
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    smtp_attempts: int = Field(default=3, ge=1, le=20)
    # Alerts milder than this are not e-mailed (MQTT and webhooks still carry them).
    email_min_severity: Literal["blue", "yellow", "orange", "red"] = "blue"
    # Where people reach the API and dashboard; e-mails link to {public_url}/#alert={id} when set.
    public_url: str | None = None
    # design.md §5: unacknowledged red alerts are notified again, escalating one roster rank each round.
    renotify_interval_s: float = Field(default=600.0, gt=0)
    renotify_check_s: float = Field(default=30.0, gt=0)
    # The daily rainfall report runs at the end of the hydrological day (08:00 local, design.md §1).
    daily_report_enabled: bool = True

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, v: str | None) -> str | None:
        if v is not None:
            parts = urlsplit(v)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"SMARTWATER_PUBLIC_URL must be an http(s) URL, got {v!r}")
            v = v.rstrip("/")
        return v
    # --- end of the notification block ---

    # --- Access control (core/auth.py, api/auth.py): users, bearer tokens, the login rate limit ---
    # HMAC key of the API's bearer tokens, at least 32 characters (e.g. `openssl rand -hex 32`). Unset: a random one
    # is generated once in data_dir/auth_secret (mode 0600). Set it when several API hosts must accept one token;
    # changing it invalidates every token issued.
    auth_secret: SecretStr | None = None
    # Lifetime of a token from POST /api/v1/auth/login (and the default of `smartwater token`).
    token_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 86400)
    # Failed logins allowed per user name and client address within the window, then 429 until the oldest ages out;
    # one address gets ten times as many across all names.
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_failure_window_s: float = Field(default=300.0, gt=0, le=86400)
    # How long the API may reuse a user lookup (active? role?) between requests; a user disabled from the CLI is
    # refused at the latest this much later.
    auth_user_cache_s: float = Field(default=5.0, ge=0, le=300)

    @field_validator("auth_secret")
    @classmethod
    def _check_auth_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value().strip()) < 32:
            raise ValueError("SMARTWATER_AUTH_SECRET must have at least 32 characters (e.g. `openssl rand -hex 32`)")
        return v
    # --- end of the access-control block ---

    @field_validator("webhook_urls", mode="before")
    @classmethod
    def _split_urls(cls, v: object) -> object:
        if isinstance(v, str):
            return [u.strip() for u in v.replace(";", ",").split(",") if u.strip()]
        return v

    @field_validator("webhook_urls")
    @classmethod
    def _check_urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"webhook URL must be http(s): {url!r}")
        return v

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"SMARTWATER_MQTT_URL must look like mqtt://host:port, got {v!r}")
        return v

    @model_validator(mode="after")
    def _defaults_under_data_dir(self) -> "Settings":
        if self.tsdb_url is None:
            self.tsdb_url = f"sqlite:///{self.data_dir / 'timeseries.sqlite3'}"
        if self.db_url is None:
            self.db_url = f"sqlite:///{self.data_dir / 'registry.sqlite3'}"
        if urlsplit(self.tsdb_url).scheme not in TSDB_SCHEMES:
            raise ValueError(f"SMARTWATER_TSDB_URL scheme must be one of {TSDB_SCHEMES}, got {self.tsdb_url!r}")
        if urlsplit(self.db_url).scheme not in DB_SCHEMES:
            raise ValueError(f"SMARTWATER_DB_URL scheme must be one of {DB_SCHEMES}, got {self.db_url!r}")
        return self

    # --- River chiefs: patrols, issues, compliance (core/patrols; design.md §4 "River chiefs") ---
    # A patrol counts (is valid) only when its cleaned GPS track lasts long enough, is long enough, covers
    # enough of its segment and was not made by car. Published minimums: ≥ 5 min and ≥ 300 m (Anhui),
    # ≥ 30 min and ≥ 2 km (Xinjiang).
    patrol_min_duration_s: float = Field(default=300.0, ge=0)
    patrol_min_distance_m: float = Field(default=300.0, ge=0)
    # Share of the segment's length within patrol_coverage_buffer_m of the track (sampled every step).
    patrol_min_coverage: float = Field(default=0.6, ge=0, le=1)
    patrol_coverage_buffer_m: float = Field(default=100.0, gt=0)
    patrol_coverage_step_m: float = Field(default=10.0, gt=0, le=1000)
    # Faster than this on average, or over more than half the track's ground, is a "patrol" by car.
    patrol_max_speed_kmh: float = Field(default=30.0, gt=0)
    # Minimum time between the starts of a chief's counted self-started patrols (one app: 96 h); 0 = off.
    patrol_min_gap_h: float = Field(default=0.0, ge=0)
    # Fixes whose reported accuracy is worse than this are ignored (cell-tower fixes are hundreds of metres).
    patrol_max_point_accuracy_m: float = Field(default=100.0, gt=0)
    # Minimum patrol frequency per level, "N/unit" with unit week | dekad (ten days: 1–10, 11–20, 21–end of
    # month) | month | quarter | year, in local calendar periods (display_timezone). Published examples:
    # county quarterly or monthly, town every ten days or ≥ 3 a month, village weekly.
    patrol_frequency_county: str = "1/month"
    patrol_frequency_town: str = "1/dekad"
    patrol_frequency_village: str = "1/week"
    patrol_frequency_grid: str = "1/week"
    # Issues (complaint-platform benchmarks): assigned within 4 h of being found counts as a response;
    # closure deadline after assignment by assignee kind.
    issue_response_h: float = Field(default=4.0, gt=0)
    issue_deadline_days_village: float = Field(default=2.0, gt=0)
    issue_deadline_days_town: float = Field(default=3.0, gt=0)
    issue_deadline_days_department: float = Field(default=4.0, gt=0)
    # Patrol and issue photos: JPEG, PNG or WebP (checked by content), stored under data_dir/photos.
    photo_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # The public bulletin (GET /api/v1/bulletin, no login) is computed at most once per this many seconds per
    # period, so a burst of visitors costs one compliance run; 0 = every request.
    bulletin_cache_s: float = Field(default=60.0, ge=0)
    # How often the alert stage looks for issues past their deadline to notify (once per issue and deadline).
    issue_overdue_check_s: float = Field(default=300.0, gt=0)

    @field_validator("patrol_frequency_county", "patrol_frequency_town", "patrol_frequency_village",
                     "patrol_frequency_grid")
    @classmethod
    def _check_patrol_frequency(cls, v: str) -> str:
        count, _, unit = v.replace(" ", "").partition("/")
        if not count.isdigit() or int(count) < 1 or unit not in ("week", "dekad", "month", "quarter", "year"):
            raise ValueError(f"patrol frequency must look like 1/week, 3/month (units week, dekad, month, "
                             f"quarter, year), got {v!r}")
        return f"{int(count)}/{unit}"
    # --- end of the river-chief block ---

    # --- Rain, areal-rainfall and inflow reports (core/reports; docs/reports.md) ---
    # A storm event ends after this many dry hours across the district; the next rain starts a new one.
    reports_event_dry_gap_h: float = Field(default=6.0, gt=0, le=72)
    # Hourly rain below this at every gauge is a trace (微量, < 0.1 mm) and leaves the hour dry.
    reports_trace_mm: float = Field(default=0.1, ge=0, le=5)
    # A gauge counts in an areal figure only when it sent at least this share of its expected readings over the
    # period (its interval_s); a silent or patchy one drops out and the Thiessen weights are recomputed.
    reports_gauge_min_coverage: float = Field(default=0.8, ge=0, le=1)
    # The longest period one report request may cover (the store aggregates it; the benchmark covers a year).
    reports_max_range_days: int = Field(default=366, ge=1, le=3660)
    # --- end of the reports block ---

    @property
    def mqtt(self) -> "MqttEndpoint":
        parts = urlsplit(self.mqtt_url)
        return MqttEndpoint(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if parts.scheme == "mqtts" else 1883),
            username=self.mqtt_username or (unquote(parts.username) if parts.username else None),
            password=(self.mqtt_password.get_secret_value() if self.mqtt_password is not None
                      else unquote(parts.password) if parts.password else None),
            tls=parts.scheme == "mqtts",
        )


class MqttEndpoint:
    __slots__ = ("host", "port", "username", "password", "tls")

    def __init__(self, host: str, port: int, username: str | None, password: str | None, tls: bool) -> None:
        self.host, self.port, self.username, self.password, self.tls = host, port, username, password, tls

    def __repr__(self) -> str:  # never print the password
        return f"MqttEndpoint({self.host}:{self.port}, user={self.username!r}, tls={self.tls})"


@lru_cache
def get_settings() -> Settings:
    return Settings()
