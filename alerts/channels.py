"""Notification channels: MQTT (water/alerts/{severity}, reports retained), signed webhooks, e-mail over SMTP.

A channel makes one attempt per ``send`` call and says whether another attempt is worth making; the
notifier (alerts/notify.py) owns retries, back-off and recording every attempt.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Callable, NamedTuple, Protocol
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt

from core.domain import SEVERITY_ORDER, DutyShift
from core.mqtt import connect_kwargs, new_client
from core.registry import Registry
from core.settings import Settings
from core.timeutil import UTC, parse_ts, zone

log = logging.getLogger("alerts.notify")

SIGNATURE_HEADER = "X-Smartwater-Signature"
EVENT_HEADER = "X-Smartwater-Event"
DELIVERY_HEADER = "X-Smartwater-Delivery"
USER_AGENT = "smartwater-notify/1"


@dataclass(slots=True)
class Delivery:
    """One notification to send on every channel: an alert event or a report."""

    event: str  # raised | escalated | cleared | renotified | daily_rain_report | …
    payload: dict[str, Any]
    body: bytes  # the exact bytes every channel sends (and the webhook signature covers)
    delivery_id: str  # stable across retries: receivers deduplicate on it
    topic: str  # MQTT topic
    retain: bool = False
    alert_id: int | None = None  # None for reports: nothing to record in an alert's history
    severity: str | None = None
    # E-mail recipients; None = the channel picks them from the duty roster on its first attempt.
    recipients: list[DutyShift] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Outcome(NamedTuple):
    ok: bool
    detail: str
    retry: bool = False  # a failure another attempt may cure (timeouts, 5xx, 429, SMTP 4xx)


class Channel(Protocol):
    name: str
    attempts: int

    def accepts(self, d: Delivery) -> bool: ...

    def send(self, d: Delivery) -> Outcome: ...

    def close(self) -> None: ...


def sign(secret: str | bytes, body: bytes) -> str:
    """The value of X-Smartwater-Signature for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """What a receiver does: recompute the signature over the raw body and compare in constant time."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def redact_url(url: str) -> str:
    """scheme://host[:port]/path: query strings and user info often carry tokens and must not reach the logs."""
    p = urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return f"{p.scheme}://{host}{p.path}"


def check_webhook_url(url: str) -> str:
    p = urlsplit(url)
    if p.scheme not in ("http", "https") or not p.hostname:
        raise ValueError(f"webhook URL must be http(s)://host/…: {redact_url(url)!r}")
    return url


# -- MQTT ------------------------------------------------------------------
class MqttChannel:
    """Publishes on the notifier's own MQTT connection; a delivery counts once the broker's PUBACK is in."""

    name = "mqtt"
    attempts = 1  # paho keeps a QoS 1 message queued across reconnects: retrying would duplicate it

    def __init__(self, settings: Settings, client_id: str) -> None:
        self.settings = settings
        self.connected = threading.Event()
        self.client = new_client(settings, client_id, persistent=False)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.connected.clear()
        self._started = False

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the notifier's connection: %s", reason)
            return
        self.connected.set()

    def start(self, wait_s: float = 5.0) -> None:
        self.client.connect_async(**connect_kwargs(self.settings, persistent=False))
        self.client.loop_start()
        self._started = True
        if not self.connected.wait(wait_s):
            log.warning("MQTT notifications unavailable at start; will keep trying (broker %r)", self.settings.mqtt)

    def accepts(self, d: Delivery) -> bool:
        return True

    def send(self, d: Delivery) -> Outcome:
        if not self._started:
            return Outcome(False, f"{d.topic}: notifier not started")
        info = self.client.publish(d.topic, d.body, qos=1, retain=d.retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            return Outcome(False, f"{d.topic}: broker not connected, queued for the reconnect")
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return Outcome(False, f"{d.topic}: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(self.settings.webhook_timeout_s)
        except (RuntimeError, ValueError) as exc:
            return Outcome(False, f"{d.topic}: {exc}")
        if not info.is_published():
            return Outcome(False, f"{d.topic}: no PUBACK within {self.settings.webhook_timeout_s:g} s")
        return Outcome(True, f"{d.topic} PUBACK")

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False


# -- webhooks --------------------------------------------------------------
class WebhookChannel:
    """POSTs the JSON body to one URL, signed, never following redirects (SSRF hygiene)."""

    attempts: int

    def __init__(self, settings: Settings, url: str, http: httpx.Client) -> None:
        self.url = check_webhook_url(url)
        self.name = f"webhook {redact_url(url)}"
        self.attempts = settings.webhook_attempts
        self.http = http
        self._secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None

    def accepts(self, d: Delivery) -> bool:
        return True

    def headers(self, d: Delivery) -> dict[str, str]:
        h = {"content-type": "application/json; charset=utf-8", "user-agent": USER_AGENT,
             EVENT_HEADER: d.event, DELIVERY_HEADER: d.delivery_id}
        if self._secret:
            h[SIGNATURE_HEADER] = sign(self._secret, d.body)
        return h

    def send(self, d: Delivery) -> Outcome:
        try:
            # follow_redirects=False: a 3xx could point the server at an internal address.
            resp = self.http.post(self.url, content=d.body, headers=self.headers(d), follow_redirects=False)
        except httpx.HTTPError as exc:
            return Outcome(False, f"{type(exc).__name__}: {exc}"[:300], retry=True)
        code = resp.status_code
        if 200 <= code < 300:
            return Outcome(True, f"HTTP {code}")
        if 300 <= code < 400:
            return Outcome(False, f"HTTP {code} redirect not followed", retry=False)
        # 408 and 429 are "try later"; other 4xx will not change on a retry.
        return Outcome(False, f"HTTP {code}", retry=code >= 500 or code in (408, 425, 429))

    def close(self) -> None:
        pass


# -- e-mail ----------------------------------------------------------------
def _fmt_times(ts: Any, tz_name: str) -> str:
    if ts is None:
        return "-"
    if isinstance(ts, str):
        ts = parse_ts(ts)
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    local = ts.astimezone(zone(tz_name))
    return f"{local:%Y-%m-%d %H:%M:%S} {tz_name} ({ts.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


class EmailChannel:
    """Mails alert events to the on-duty roster: the first person, plus one more per escalation round."""

    name = "email"

    def __init__(self, settings: Settings, registry: Registry, clock: Callable[[], datetime]) -> None:
        if not settings.smtp_host:
            raise ValueError("EmailChannel needs SMARTWATER_SMTP_HOST")
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.attempts = settings.smtp_attempts
        self._min_rank = SEVERITY_ORDER.index(settings.email_min_severity)

    def accepts(self, d: Delivery) -> bool:
        # Reports go to MQTT and webhooks only; alerts from email_min_severity up.
        return d.alert_id is not None and d.severity in SEVERITY_ORDER \
            and SEVERITY_ORDER.index(d.severity) >= self._min_rank

    def recipients(self, d: Delivery) -> list[DutyShift]:
        """Explicit recipients (the re-notifier's), else the on-duty roster up to the alert's escalation level."""
        if d.recipients is None:
            p = d.payload
            station = self.registry.get_station(p["station_id"])
            roster = self.registry.on_duty(self.clock(), station.town if station else None, p.get("kind") or None)
            level = sum(1 for e in self.registry.alert_events(d.alert_id) if e["event"] == "escalated_to")
            d.recipients = roster[:level + 1]
        return d.recipients

    def message(self, d: Delivery, to: list[str]) -> EmailMessage:
        p = d.payload
        tz = self.settings.display_timezone
        station = self.registry.get_station(p["station_id"])
        st_name = station.name if station else p["station_id"]
        msg = EmailMessage()
        subject = f"[{str(p['severity']).upper()}] {st_name}: {p['message']}"
        msg["Subject"] = " ".join(subject.split())  # no CR/LF from data into a header
        msg["From"] = self.settings.smtp_from
        msg["To"] = ", ".join(to)
        msg["Date"] = format_datetime(self.clock().astimezone(zone(tz)))
        msg["Message-ID"] = make_msgid(idstring=d.delivery_id, domain="smartwater")
        msg[EVENT_HEADER] = d.event
        msg[DELIVERY_HEADER] = d.delivery_id
        lines = [
            f"Alert {p['id']} {p['event']}: {p['message']}",
            "",
            f"Station:   {st_name} ({p['station_id']}, {p.get('kind') or '-'})"
            + (f", {station.town}" if station else ""),
            f"Rule:      {p['rule']} ({p.get('metric') or '-'})",
            f"Severity:  {p['severity']}",
            f"State:     {p['state']}",
            f"Value:     {_num(p.get('value'))}",
            f"Threshold: {_num(p.get('threshold'))}",
            f"Data time: {_fmt_times(p.get('updated_at'), tz)}",
            f"Started:   {_fmt_times(p.get('started_at'), tz)}",
        ]
        if self.settings.public_url and p.get("state") in ("active", "acknowledged"):
            # The dashboard, not the API's POST /ack: a mail client can only open a link, and the page logs in.
            lines += ["", f"Acknowledge on the dashboard: {self.settings.public_url.rstrip('/')}/#alert={p['id']}"]
        lines += ["", f"Delivery {d.delivery_id}"]
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def send(self, d: Delivery) -> Outcome:
        people = self.recipients(d)
        to = [s.email for s in people if s.email]
        names = ", ".join(f"{s.person} <{s.email}>" if s.email else f"{s.person} (no e-mail)" for s in people)
        if not to:
            return Outcome(False, f"no on-duty recipient with an e-mail address ({names or 'roster empty'})")
        s = self.settings
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s) as smtp:
                smtp.ehlo()
                if s.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password.get_secret_value() if s.smtp_password else "")
                refused = smtp.send_message(self.message(d, to), from_addr=s.smtp_from, to_addrs=to)
        except smtplib.SMTPRecipientsRefused as exc:
            return Outcome(False, f"to {names}: all recipients refused {exc.recipients}"[:300],
                           retry=_transient(exc.recipients))
        except smtplib.SMTPResponseException as exc:
            return Outcome(False, f"to {names}: SMTP {exc.smtp_code} {exc.smtp_error!r}"[:300],
                           retry=400 <= exc.smtp_code < 500)
        except (smtplib.SMTPException, OSError, socket.timeout) as exc:
            return Outcome(False, f"to {names}: {type(exc).__name__}: {exc}"[:300], retry=True)
        if refused:
            return Outcome(True, f"to {names}; refused {sorted(refused)}")
        return Outcome(True, f"to {names}")

    def close(self) -> None:
        pass


def _transient(refused: dict[str, tuple[int, bytes]]) -> bool:
    return any(400 <= code < 500 for code, _ in refused.values())
