"""Notification channels against real peers: a private Mosquitto, an HTTP webhook receiver, an SMTP server."""

from __future__ import annotations

import email
import email.policy
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

from alerts.channels import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, verify
from alerts.notify import AlertNotifier, backoff_s
from core.broker import free_port
from core.domain import Alert, DutyShift, Station
from core.mqtt import MqttConsumer, wait_for
from core.timeutil import utcnow

SECRET = "s3cret-for-tests"
GAUGE_CN = Station(id="RG9101", kind="rain", name="蓝村雨量站", town="蓝村街道", lat=36.4, lon=120.5, interval_s=300)
ROSTER = [("王伟", "wang@example.org"), ("李娜", "li@example.org"), ("赵强", "zhao@example.org")]


# -- real peers ---------------------------------------------------------------
class WebhookReceiver:
    """An HTTP server answering POSTs with scripted status codes, keeping headers and the raw body."""

    def __init__(self, statuses: list[int] | None = None, default: int = 204, location: str | None = None):
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        self.default = default
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["content-length"]))
                with outer.lock:
                    outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, raw))
                    status = outer.statuses.pop(0) if outer.statuses else outer.default
                self.send_response(status)
                if 300 <= status < 400 and location:
                    self.send_header("Location", location)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook?token=abc"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def bodies(self) -> list[dict]:
        return [json.loads(raw) for _, raw in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd handler collecting messages; ``fail_next`` answers DATA with a transient 451 that many times."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.fail_next = 0

    async def handle_DATA(self, server, session, envelope):
        if self.fail_next:
            self.fail_next -= 1
            return "451 4.3.0 Try again later"
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 OK"


@pytest.fixture
def smtp():
    box = Mailbox()
    ctl = Controller(box, hostname="127.0.0.1", port=free_port())
    ctl.start()
    box.port = ctl.port
    yield box
    ctl.stop()


@pytest.fixture
def hooks():
    made: list[WebhookReceiver] = []

    def make(**kw) -> WebhookReceiver:
        made.append(WebhookReceiver(**kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


class Listener(MqttConsumer):
    def __init__(self, settings, topic="water/#"):
        super().__init__(settings, settings.mqtt_client_prefix + "-listener", [(topic, 1)], persistent=False)
        self.got: list[tuple[str, dict, bool]] = []

    def handle(self, msg):
        self.got.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))


@pytest.fixture
def notifier_factory(registry):
    made: list[AlertNotifier] = []

    def make(settings, **kw) -> AlertNotifier:
        n = AlertNotifier(settings, registry, **kw)
        n.start()
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop()


def fast(settings, **update):
    """Settings with retries in milliseconds, so a test of five attempts takes a fraction of a second."""
    base = {"webhook_retry_delay_s": 0.02, "webhook_retry_max_delay_s": 0.1, "webhook_timeout_s": 2.0}
    return settings.model_copy(update={**base, **update})


def with_smtp(settings, box: Mailbox, **update):
    return fast(settings, smtp_host="127.0.0.1", smtp_port=box.port, smtp_starttls=False, **update)


def add_roster(registry, town: str | None = GAUGE_CN.town, people=ROSTER) -> list[DutyShift]:
    now = utcnow()
    return [registry.add_shift(DutyShift(person=p, email=e, town=town, starts_at=now - timedelta(days=1),
                                         ends_at=now + timedelta(days=1), rank=i)) for i, (p, e) in enumerate(people)]


def red_rain_alert(registry, station: Station = GAUGE_CN) -> Alert:
    registry.upsert_stations([station])
    ts = datetime(2026, 6, 28, 6, 5, tzinfo=timezone.utc)  # 14:05 in Asia/Shanghai
    alert = Alert(station_id=station.id, kind="rain", rule="rainstorm", metric="rain_mm", severity="red",
                  state="active", started_at=ts, updated_at=ts, value=112.5, threshold=100.0,
                  message="3 h rain 112.5 mm ≥ 100 mm (rainstorm red)")
    return registry.insert_alert(alert)


def attempts(registry, alert_id: int, channel: str) -> list[tuple[str, str]]:
    return [(e["event"], e["detail"]) for e in registry.alert_events(alert_id)
            if e["event"] in ("notified", "notify_failed") and f"via {channel}" in e["detail"]]


# -- webhooks -------------------------------------------------------------------
def test_webhook_is_signed_and_carries_event_and_delivery_headers(settings, registry, hooks, notifier_factory):
    hook = hooks()
    s = fast(settings, webhook_urls=[hook.url], webhook_secret=SecretStr(SECRET))
    listener = Listener(s, "water/alerts/#")
    listener.start()
    assert listener.wait_connected(10)
    try:
        alert = red_rain_alert(registry)
        notifier = notifier_factory(s)
        assert notifier.notify(alert, "raised") == f"{alert.id}-raised-1"
        assert notifier.drain(10)
        assert wait_for(lambda: listener.got, 10)
    finally:
        listener.stop()

    [(headers, raw)] = hook.requests
    assert verify(SECRET, raw, headers[SIGNATURE_HEADER.lower()])
    assert not verify("another secret", raw, headers[SIGNATURE_HEADER.lower()])
    assert not verify(SECRET, raw + b" ", headers[SIGNATURE_HEADER.lower()])  # the raw bytes are what is signed
    assert headers[EVENT_HEADER.lower()] == "raised"
    assert headers[DELIVERY_HEADER.lower()] == f"{alert.id}-raised-1"
    body = json.loads(raw)
    assert (body["event"], body["id"], body["severity"], body["station_id"]) == ("raised", alert.id, "red", "RG9101")
    assert [(t, b["id"]) for t, b, _ in listener.got] == [("water/alerts/red", alert.id)]

    recorded = attempts(registry, alert.id, "webhook")
    assert len(recorded) == 1 and recorded[0][0] == "notified" and "attempt 1/5 HTTP 204" in recorded[0][1]
    assert "token=abc" not in recorded[0][1]  # query strings (tokens) stay out of the history
    assert attempts(registry, alert.id, "mqtt")[0][0] == "notified"

    # The next delivery of the same event gets a new idempotency key.
    assert notifier.notify(alert, "raised") == f"{alert.id}-raised-2"


def test_no_signature_header_without_a_secret(settings, registry, hooks, notifier_factory):
    hook = hooks()
    alert = red_rain_alert(registry)
    notifier = notifier_factory(fast(settings, webhook_urls=[hook.url]))
    notifier.notify(alert, "cleared")
    assert notifier.drain(10)
    [(headers, _)] = hook.requests
    assert SIGNATURE_HEADER.lower() not in headers
    assert headers[EVENT_HEADER.lower()] == "cleared"


def test_webhook_failing_twice_then_succeeding_is_delivered_once(settings, registry, hooks, notifier_factory):
    hook = hooks(statuses=[500, 503])
    alert = red_rain_alert(registry)
    notifier = notifier_factory(fast(settings, webhook_urls=[hook.url]))
    notifier.notify(alert, "raised")
    assert notifier.drain(10)

    assert len(hook.requests) == 3
    # Every retry is the same delivery: a receiver deduplicates on the header.
    assert {h[DELIVERY_HEADER.lower()] for h, _ in hook.requests} == {f"{alert.id}-raised-1"}
    recorded = attempts(registry, alert.id, "webhook")
    assert [e for e, _ in recorded] == ["notify_failed", "notify_failed", "notified"]
    assert "attempt 1/5 HTTP 500" in recorded[0][1]
    assert "attempt 2/5 HTTP 503" in recorded[1][1]
    assert "attempt 3/5 HTTP 204" in recorded[2][1]
    assert notifier.failed == 0


def test_webhook_that_always_fails_gives_up_after_n_attempts(settings, registry, hooks, notifier_factory):
    hook = hooks(default=500)
    alert = red_rain_alert(registry)
    notifier = notifier_factory(fast(settings, webhook_urls=[hook.url], webhook_attempts=4))
    notifier.notify(alert, "raised")
    assert notifier.drain(10)

    assert len(hook.requests) == 4
    recorded = attempts(registry, alert.id, "webhook")
    assert [e for e, _ in recorded] == ["notify_failed"] * 4
    assert [f"attempt {i}/4 HTTP 500" in d for i, (_, d) in enumerate(recorded, 1)] == [True] * 4
    assert "giving up" in recorded[-1][1] and "giving up" not in recorded[0][1]
    assert notifier.failed == 1


def test_unreachable_webhook_records_the_error(settings, registry, notifier_factory):
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    alert = red_rain_alert(registry)
    notifier = notifier_factory(fast(settings, webhook_urls=[url], webhook_attempts=2))
    notifier.notify(alert, "raised")
    assert notifier.drain(10)
    recorded = attempts(registry, alert.id, "webhook")
    assert [e for e, _ in recorded] == ["notify_failed"] * 2
    assert "ConnectError" in recorded[0][1]


def test_webhook_redirects_are_not_followed(settings, registry, hooks, notifier_factory):
    inner = hooks()
    outer = hooks(default=307, location=inner.url)
    alert = red_rain_alert(registry)
    notifier = notifier_factory(fast(settings, webhook_urls=[outer.url]))
    notifier.notify(alert, "raised")
    assert notifier.drain(10)
    assert len(outer.requests) == 1 and inner.requests == []
    [(event, detail)] = attempts(registry, alert.id, "webhook")
    assert event == "notify_failed" and "HTTP 307 redirect not followed" in detail


def test_webhook_urls_are_checked_at_startup(settings, registry):
    with pytest.raises(ValueError):
        AlertNotifier(settings.model_copy(update={"webhook_urls": ["http:///no-host"]}), registry)
    with pytest.raises(ValueError):
        type(settings)(webhook_urls="file:///etc/passwd", _env_file=None)


def test_stop_records_retries_it_abandons(settings, registry, hooks):
    hook = hooks(default=500)
    alert = red_rain_alert(registry)
    notifier = AlertNotifier(fast(settings, webhook_urls=[hook.url], webhook_retry_delay_s=30.0,
                                  webhook_retry_max_delay_s=30.0), registry)
    notifier.start()
    notifier.notify(alert, "raised")
    assert wait_for(lambda: attempts(registry, alert.id, "webhook"), 10)
    notifier.stop()
    notifier.stop()  # harmless twice
    recorded = attempts(registry, alert.id, "webhook")
    assert [e for e, _ in recorded] == ["notify_failed", "notify_failed"]
    assert "attempt 2/5 abandoned: notifier stopped; giving up" in recorded[1][1]
    assert len(hook.requests) == 1


def test_retry_delays_grow_exponentially_with_jitter_and_a_cap(settings):
    s = settings.model_copy(update={"webhook_retry_delay_s": 1.0, "webhook_retry_max_delay_s": 6.0})
    for attempt, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 6.0), (9, 6.0)]:
        delays = [backoff_s(s, attempt) for _ in range(200)]
        assert all(0.8 * nominal <= d <= 1.2 * nominal for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert (settings.webhook_attempts, settings.webhook_retry_delay_s) == (5, 1.0)  # the defaults


# -- e-mail -------------------------------------------------------------------------
def test_email_goes_to_the_first_on_duty_person(settings, registry, smtp, notifier_factory):
    add_roster(registry)
    add_roster(registry, town="其他街道", people=[("Other", "other@example.org")])
    alert = red_rain_alert(registry)
    notifier = notifier_factory(with_smtp(settings, smtp, public_url="https://water.example.org/"))
    delivery = notifier.notify(alert, "raised")
    assert notifier.drain(10)

    [(sender, rcpts, msg)] = smtp.messages
    assert sender == "smartwater@localhost"
    assert rcpts == ["wang@example.org"]
    assert msg["Subject"] == "[RED] 蓝村雨量站: 3 h rain 112.5 mm ≥ 100 mm (rainstorm red)"
    assert msg[DELIVERY_HEADER] == delivery
    body = msg.get_content()
    assert "蓝村雨量站 (RG9101, rain), 蓝村街道" in body
    assert "Rule:      rainstorm (rain_mm)" in body
    assert "Value:     112.5" in body and "Threshold: 100" in body
    assert "2026-06-28 14:05:00 Asia/Shanghai (2026-06-28 06:05:00 UTC)" in body
    assert f"Acknowledge on the dashboard: https://water.example.org/#alert={alert.id}" in body

    [(event, detail)] = attempts(registry, alert.id, "email")
    assert event == "notified" and "王伟 <wang@example.org>" in detail and "li@" not in detail


def test_email_transient_failure_is_retried(settings, registry, smtp, notifier_factory):
    add_roster(registry)
    smtp.fail_next = 1
    alert = red_rain_alert(registry)
    notifier = notifier_factory(with_smtp(settings, smtp))
    notifier.notify(alert, "raised")
    assert notifier.drain(10)
    assert len(smtp.messages) == 1
    recorded = attempts(registry, alert.id, "email")
    assert [e for e, _ in recorded] == ["notify_failed", "notified"]
    assert "SMTP 451" in recorded[0][1]
    assert "Acknowledge" not in smtp.messages[0][2].get_content()  # no public URL configured


def test_email_without_anyone_on_duty_is_recorded_as_failed(settings, registry, smtp, notifier_factory):
    alert = red_rain_alert(registry)
    notifier = notifier_factory(with_smtp(settings, smtp))
    notifier.notify(alert, "raised")
    assert notifier.drain(10)
    assert smtp.messages == []
    [(event, detail)] = attempts(registry, alert.id, "email")
    assert event == "notify_failed" and "no on-duty recipient" in detail


def test_email_is_off_without_smtp_host(settings, registry):
    notifier = AlertNotifier(settings, registry)
    assert notifier.email is None and [c.name for c in notifier.channels] == ["mqtt"]
    notifier.stop()
