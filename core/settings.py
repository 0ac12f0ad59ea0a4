"""All configuration in one place, read from the environment (prefix ``SMARTWATER_``) and ``.env``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.flood_season import FloodSeason
from core.redact import redact_url
from core.secrets_check import key_problem, password_problem

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
    # Slow clients (api/protocol.py): a connection must send its request line and headers within
    # api_header_timeout_s; an idle keep-alive connection is closed after api_keepalive_timeout_s; beyond
    # api_max_connections open connections (alert streams included) new requests get 503.
    api_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    api_keepalive_timeout_s: int = Field(default=5, ge=1, le=300)
    api_max_connections: int = Field(default=2000, ge=10, le=100_000)
    # Reverse proxies whose X-Forwarded-For names the client (comma-separated addresses or networks, e.g.
    # 172.18.0.0/16); empty: the TCP peer is the client, and the header is ignored from everyone.
    api_trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The largest JSON body the API reads (413 beyond; checked before parsing). A batch of 5,000 GPS points needs
    # about 1 MB; logins are capped at 8 KiB and photo uploads at photo_max_bytes (api/limits.py).
    api_max_json_bytes: int = Field(default=2 * 1024 * 1024, ge=16 * 1024, le=64 * 1024 * 1024)
    display_timezone: str = "Asia/Shanghai"
    # Live alert streams (SSE, GET /api/v1/alerts/stream): per user (a few browser tabs), per client address (an
    # office behind one NAT), in all; the last stream_reserved_staff slots only for admins, supervisors and duty.
    stream_max_per_user: int = Field(default=5, ge=1, le=1000)
    stream_max_per_address: int = Field(default=50, ge=1, le=100_000)
    stream_max_clients: int = Field(default=1000, ge=1, le=100_000)
    stream_reserved_staff: int = Field(default=100, ge=0, le=100_000)

    ingest_batch_size: int = Field(default=5000, ge=1)
    # amqtt drops an unacknowledged QoS 1 delivery after 5 s, so the flush timer must stay well below that.
    ingest_flush_interval_s: float = Field(default=0.2, gt=0, le=2.0)
    ingest_max_payload_bytes: int = Field(default=256 * 1024, ge=256)
    ingest_max_future_s: float = Field(default=300.0, ge=0)
    # Dead letters keep this much of a rejected payload (plus its size and SHA-256), and are pruned beyond
    # dead_letter_max_count rows or dead_letter_max_age_days days (core/dead_letters.py).
    dead_letter_keep_bytes: int = Field(default=4096, ge=64, le=1024 * 1024)
    dead_letter_max_count: int = Field(default=100_000, ge=100)
    dead_letter_max_age_days: float = Field(default=30.0, gt=0)
    # Scale-out: workers with the same group share water/# through $share/{group}/…; each needs its own id.
    ingest_shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    ingest_worker_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    # /metrics and /healthz of the ingest process (`smartwater run ingest`); 0 turns them off.
    ingest_metrics_host: str = "127.0.0.1"
    ingest_metrics_port: int = Field(default=9108, ge=0, le=65535)
    # /metrics and /healthz of the alert process (`smartwater run alerts`); 0 turns them off.
    alerts_metrics_host: str = "127.0.0.1"
    alerts_metrics_port: int = Field(default=9109, ge=0, le=65535)

    # -- station catalogue (core/catalog.py), shared by ingest and alerts --
    # How old the in-memory stations may get before a reload: a station added or a reference level edited in
    # the registry reaches ingest and the alert engine within this time (an unknown id reloads sooner).
    station_refresh_s: float = Field(default=30.0, gt=0)

    # The reservoir ladder's orange step where a reservoir has no flood-control high level: this far below its
    # design flood level (a rule's params.design_margin_m, or per reservoir params.per_station, come first).
    alerts_reservoir_design_margin_m: float = Field(default=1.0, ge=0)
    # The flood season, per province (Shandong: 1 June – 30 September, main season July–August; docs/domain.md,
    # "Flood season"): local month-days. A reservoir without seasonal flood-limit periods is held to its
    # flood-limit level inside it and to its normal pool outside; the demo district's periods follow it.
    flood_season_start: str = "06-01"
    flood_season_end: str = "09-30"
    main_flood_season: str = "07-01..08-31"
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
    # Unacknowledged red alerts are notified again, escalating one roster rank each round.
    renotify_interval_s: float = Field(default=600.0, gt=0)
    renotify_check_s: float = Field(default=30.0, gt=0)
    # The daily rainfall report runs at the end of the hydrological day (08:00 local, docs/alert-semantics.md).
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
    # HMAC key of the API's bearer tokens, at least 32 random characters (`openssl rand -hex 32`); a placeholder
    # (change-me …) or a guessable key is refused at start (core/secrets_check.py). Unset: a random one
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
        # Anyone holding this key signs admin tokens: the example's placeholder or a guessable key is refused.
        if v is not None:
            problem = key_problem("SMARTWATER_AUTH_SECRET", v.get_secret_value())
            if problem:
                raise ValueError(problem)
        return v

    @field_validator("influx_token", "mqtt_password", "smtp_password", "webhook_secret")
    @classmethod
    def _check_no_placeholder(cls, v: SecretStr | None, info) -> SecretStr | None:  # type: ignore[no-untyped-def]
        if v is not None:
            problem = password_problem(f"SMARTWATER_{info.field_name.upper()}", v.get_secret_value())
            if problem:
                raise ValueError(problem)
        return v
    # --- end of the access-control block ---

    @field_validator("api_trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, v: object) -> object:
        if isinstance(v, str):
            v = [p.strip() for p in v.replace(";", ",").split(",") if p.strip()]
        if isinstance(v, list):
            import ipaddress

            for p in v:
                try:
                    ipaddress.ip_network(str(p).strip(), strict=False)
                except ValueError:
                    raise ValueError(f"SMARTWATER_API_TRUSTED_PROXIES: not an IP address or network: {p!r}") from None
        return v

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
            raise ValueError(f"SMARTWATER_MQTT_URL must look like mqtt://host:port, got {redact_url(v)!r}")
        _check_url_password("SMARTWATER_MQTT_URL", v)
        return v

    @model_validator(mode="after")
    def _defaults_under_data_dir(self) -> "Settings":
        if self.tsdb_url is None:
            self.tsdb_url = f"sqlite:///{self.data_dir / 'timeseries.sqlite3'}"
        if self.db_url is None:
            self.db_url = f"sqlite:///{self.data_dir / 'registry.sqlite3'}"
        if urlsplit(self.tsdb_url).scheme not in TSDB_SCHEMES:
            raise ValueError(f"SMARTWATER_TSDB_URL scheme must be one of {TSDB_SCHEMES}, "
                             f"got {redact_url(self.tsdb_url)!r}")
        if urlsplit(self.db_url).scheme not in DB_SCHEMES:
            raise ValueError(f"SMARTWATER_DB_URL scheme must be one of {DB_SCHEMES}, got {redact_url(self.db_url)!r}")
        _check_url_password("SMARTWATER_DB_URL", self.db_url)
        return self

    def secret_values(self) -> list[str]:
        """Every secret these settings hold (for the log filter that masks them)."""
        out = [s.get_secret_value() for s in (self.auth_secret, self.influx_token, self.mqtt_password,
                                               self.smtp_password, self.webhook_secret) if s is not None]
        for url in (self.mqtt_url, self.db_url, self.tsdb_url):
            try:
                password = urlsplit(url or "").password
            except ValueError:
                password = None
            if password:
                out += [password, unquote(password)]
        return [s for s in out if s]

    # --- River chiefs: patrols, issues, compliance (core/patrols; docs/domain.md, "River chiefs") ---
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
    # No back-filling (docs/river-chiefs.md): a patrol may start at most this long before it is recorded (a
    # phone offline for a day or two); older records are imported by an admin, with a reason. Fixes must lie
    # between the patrol's start and finish, give or take the clock tolerance (phone clocks run a little off).
    patrol_backdate_grace_h: float = Field(default=48.0, ge=0)
    patrol_clock_tolerance_s: float = Field(default=300.0, ge=0, le=86400)
    # At most this many GPS fixes per patrol: one a second for five and a half hours.
    patrol_max_points: int = Field(default=20_000, ge=100)
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

    # --- Field-protocol gateway (gateway/; docs/gateway.md): SL 651-2014 and HJ 212-2017 over TCP ---
    # Like the API: local only unless set (compose sets 0.0.0.0 so devices reach it).
    gateway_host: str = "127.0.0.1"
    # One TCP port per protocol; 0 turns that protocol off.
    gateway_sl651_port: int = Field(default=5651, ge=0, le=65535)
    gateway_hj212_port: int = Field(default=5212, ge=0, le=65535)
    # Connections held at once (all protocols); one more is closed at once.
    gateway_max_connections: int = Field(default=5000, ge=1)
    # A connection silent this long is closed (RTUs send a keep-alive every few minutes at most).
    gateway_idle_timeout_s: float = Field(default=600.0, gt=0)
    # Longest frame accepted; SL 651's 12-bit length allows 4,112 bytes, HJ 212 data segments stay under 1,024.
    gateway_max_frame_bytes: int = Field(default=4200, ge=64, le=20000)
    # Frames per second one connection may send; faster ones are read more slowly (TCP back-pressure).
    gateway_max_frames_per_s: float = Field(default=50.0, gt=0)
    # After this many refused frames (unknown device, wrong password, bad CRC) the connection is closed.
    gateway_max_refused_frames: int = Field(default=3, ge=1)
    # Packets of a multi-packet message (SL 651 M3, HJ 212 PNUM/PNO) wait this long for the rest.
    gateway_multipacket_timeout_s: float = Field(default=120.0, gt=0)
    # A device clock further than this from ours is a data-quality problem (logged, counted per device).
    gateway_clock_drift_s: float = Field(default=300.0, gt=0)
    # How long a frame waits for the broker's acknowledgement before the connection is dropped unconfirmed.
    gateway_publish_timeout_s: float = Field(default=30.0, gt=0)
    # Extra or overriding element/code → metric entries (YAML, the shape of gateway/mappings.yaml).
    gateway_mapping_file: Path | None = None
    # /metrics and /healthz of the gateway process (`smartwater run gateway`); 0 turns them off.
    gateway_metrics_host: str = "127.0.0.1"
    gateway_metrics_port: int = Field(default=9110, ge=0, le=65535)
    # --- end of the gateway block ---
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

    @model_validator(mode="after")
    def _check_flood_season(self) -> "Settings":
        try:
            FloodSeason.parse(self.flood_season_start, self.flood_season_end, self.main_flood_season)
        except ValueError as exc:
            raise ValueError(f"SMARTWATER_FLOOD_SEASON_START / _END / SMARTWATER_MAIN_FLOOD_SEASON: {exc}") from None
        return self

    @property
    def flood_season(self) -> FloodSeason:
        """The flood season of the district (validated when the settings were read)."""
        return FloodSeason.parse(self.flood_season_start, self.flood_season_end, self.main_flood_season)

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


def _check_url_password(name: str, url: str) -> None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        problem = password_problem(f"the password in {name}", unquote(password))
        if problem:
            raise ValueError(problem)


def describe_settings_error(exc: ValidationError) -> str:
    """A ValidationError of Settings as readable lines without the input values (they may hold passwords)."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"SMARTWATER_{field.upper()}: {msg}" if field and not msg.startswith("SMARTWATER_")
                     and not msg.startswith("the password in") else msg)
    return redact_url("; ".join(lines))


class MqttEndpoint:
    __slots__ = ("host", "port", "username", "password", "tls")

    def __init__(self, host: str, port: int, username: str | None, password: str | None, tls: bool) -> None:
        self.host, self.port, self.username, self.password, self.tls = host, port, username, password, tls

    def __repr__(self) -> str:  # never print the password
        return f"MqttEndpoint({self.host}:{self.port}, user={self.username!r}, tls={self.tls})"


@lru_cache
def get_settings() -> Settings:
    return Settings()
