"""Per-device broker accounts: generated files, and a real Mosquitto that enforces them."""

from __future__ import annotations

import csv
import stat
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from core.mqtt import MqttConsumer, Publisher, wait_for
from core.payload import topic_for
from core.settings import Settings
from core.importers import write_stations_csv
from simulators import generate_district
from smartwater.cli import app
from smartwater.devices import (ACL_FILE, CREDENTIALS_FILE, PASSWD_FILE, SERVICES_ENV_FILE, hash_password,
                                read_credentials, upsert_env_file, verify_password, write_credentials)
from support.servers import MosquittoServer


@pytest.fixture(scope="module")
def stations():
    district = generate_district(20260628)
    by_kind = {}
    for s in district:
        by_kind.setdefault(s.kind.value, []).append(s)
    # Two of one kind (a device must not write its neighbour's topic) and one of another.
    return by_kind["rain"][:2] + by_kind["reservoir"][:1]


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory: pytest.TempPathFactory, stations):
    auth = tmp_path_factory.mktemp("auth")
    summary = write_credentials(stations, auth)
    # Appended after MosquittoServer's own lines: the later allow_anonymous wins.
    server = MosquittoServer(tmp_path_factory.mktemp("secured-mosquitto"), extra_conf=(
        "allow_anonymous false\n"
        f"password_file {auth / PASSWD_FILE}\n"
        f"acl_file {auth / ACL_FILE}\n")).start()
    yield server, {a.username: a.password for a in summary.accounts}
    server.stop()


def _settings(server: MosquittoServer, username: str | None, password: str | None, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, mqtt_url=server.url, mqtt_username=username, mqtt_password=password,
                    _env_file=None)


def _connack(server: MosquittoServer, username: str | None, password: str | None) -> mqtt.ReasonCode:
    got: list = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)

    def on_connect(_c, _u, _f, reason, _p):
        got.append(reason)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", server.port)
    # The network loop in this thread: with loop_start(), a refused CONNACK ends paho's own thread while
    # loop_stop() may be joining it, and paho then fails on its own cleared thread handle.
    deadline = time.monotonic() + 10
    try:
        while not done.is_set() and time.monotonic() < deadline:
            client.loop(timeout=0.1)
        assert done.is_set(), "no CONNACK"
    finally:
        client.disconnect()
    return got[0]


class Collector(MqttConsumer):
    def __init__(self, settings: Settings, client_id: str, topic: str) -> None:
        super().__init__(settings, client_id, [(topic, 1)], persistent=False, name="test.collector")
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def handle(self, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [p for _, p in self.messages]


def test_anonymous_and_wrong_password_are_refused(secured_broker, stations):
    server, passwords = secured_broker
    assert _connack(server, None, None).is_failure
    assert _connack(server, stations[0].id, passwords[stations[1].id]).is_failure
    assert _connack(server, "nobody", "x").is_failure
    assert not _connack(server, stations[0].id, passwords[stations[0].id]).is_failure


def test_device_publishes_only_to_its_own_topic(secured_broker, stations, tmp_path: Path):
    server, passwords = secured_broker
    a, b = stations[0], stations[1]
    # The ingest account, subscribed the way the ingest workers are: through the shared subscription.
    ingest = Collector(_settings(server, "ingest", passwords["ingest"], tmp_path), "t-acl-ingest",
                       "$share/ingest/water/#")
    ingest.start()
    # The alert engine's own subscription (alerts/service.py).
    alerts = Collector(_settings(server, "alerts", passwords["alerts"], tmp_path), "t-acl-alerts-in", "water/+/+")
    alerts.start()
    device = Publisher(_settings(server, a.id, passwords[a.id], tmp_path), "t-acl-device-a")
    try:
        assert ingest.wait_connected(10) and not ingest.subscribe_refused
        assert alerts.wait_connected(10) and not alerts.subscribe_refused
        device.start()
        own = device.publish(topic_for(a.kind.value, a.id), b"own-1")
        forged = device.publish(topic_for(b.kind.value, b.id), b"forged")
        other_kind = device.publish(topic_for("reservoir", a.id), b"wrong-kind")
        # The broker delivers one publisher's QoS 1 messages in order: once the marker is in, the forged ones
        # would have been too.
        marker = device.publish(topic_for(a.kind.value, a.id), b"own-2")
        assert device.wait_all_published([own, forged, other_kind, marker], 10)
        assert wait_for(lambda: b"own-2" in ingest.payloads(), 10), ingest.messages
        assert ingest.payloads() == [b"own-1", b"own-2"]
        assert ingest.messages[0][0] == topic_for(a.kind.value, a.id)
        assert wait_for(lambda: b"own-2" in alerts.payloads(), 10) and alerts.payloads() == [b"own-1", b"own-2"]
    finally:
        device.stop()
        alerts.stop()
        ingest.stop()


def test_services_reach_only_their_topics(secured_broker, tmp_path: Path):
    server, passwords = secured_broker
    api = Collector(_settings(server, "api", passwords["api"], tmp_path), "t-acl-api", "water/alerts/#")
    api.start()
    alerts = Publisher(_settings(server, "alerts", passwords["alerts"], tmp_path), "t-acl-alerts")
    simulator = Publisher(_settings(server, "simulator", passwords["simulator"], tmp_path), "t-acl-sim")
    try:
        assert api.wait_connected(10) and not api.subscribe_refused
        alerts.start()
        simulator.start()
        # The simulator writes station topics but cannot forge a notification people would see.
        spoof = simulator.publish("water/alerts/red", b"spoofed")
        assert simulator.wait_all_published([spoof], 10)
        real = alerts.publish("water/alerts/red", b"real")
        assert alerts.wait_all_published([real], 10)
        assert wait_for(lambda: b"real" in api.payloads(), 10)
        # The simulator's message was acknowledged before the alert was sent; had it passed, it came first.
        assert api.payloads() == [b"real"]
    finally:
        simulator.stop()
        alerts.stop()
        api.stop()


def test_hash_is_mosquittos_pbkdf2_format():
    hashed = hash_password("secret", salt=bytes(12))
    assert hashed.startswith("$7$101$AAAAAAAAAAAAAAAA$")
    assert verify_password("secret", hashed) and not verify_password("Secret", hashed)


def test_rerun_keeps_passwords_rotate_changes_them(tmp_path: Path, stations):
    first = write_credentials(stations, tmp_path)
    before = read_credentials(tmp_path / CREDENTIALS_FILE)
    assert len(first.new) == len(before) == len(stations) + 6
    for name in (CREDENTIALS_FILE, PASSWD_FILE, SERVICES_ENV_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name

    again = write_credentials(stations[:2], tmp_path)
    after = read_credentials(tmp_path / CREDENTIALS_FILE)
    assert {u: a.password for u, a in after.items()} == {u: before[u].password for u in after}
    assert again.removed == [stations[2].id] and stations[2].id not in (tmp_path / ACL_FILE).read_text()

    one = write_credentials(stations[:2], tmp_path, rotate_accounts=[stations[0].id])
    assert one.rotated == [stations[0].id]
    assert read_credentials(tmp_path / CREDENTIALS_FILE)[stations[0].id].password != before[stations[0].id].password
    everything = write_credentials(stations[:2], tmp_path, rotate=True)
    assert len(everything.rotated) == 2 + 6 and not everything.kept
    with pytest.raises(ValueError, match="no such account"):
        write_credentials(stations, tmp_path, rotate_accounts=["nobody"])


def test_station_id_that_clashes_with_a_service_is_refused(tmp_path: Path, stations):
    clash = stations[0].model_copy(update={"id": "ingest"})
    with pytest.raises(ValueError, match="service account"):
        write_credentials([clash], tmp_path)


def test_cli_writes_files_and_sets_the_env_file(tmp_path: Path, stations):
    stations_csv = tmp_path / "stations.csv"
    write_stations_csv(stations, stations_csv)
    env = tmp_path / ".env"
    env.write_text("# keep me\nPOSTGRES_PASSWORD=pg\nMQTT_INGEST_PASSWORD=change-me\n")
    out = tmp_path / "auth"
    result = CliRunner().invoke(app, ["devices", "credentials", "--csv", str(stations_csv), "--out", str(out),
                                      "--env-file", str(env)])
    assert result.exit_code == 0, result.output
    assert "3 device and 6 service accounts" in result.output
    with (out / CREDENTIALS_FILE).open(newline="") as f:
        rows = {r["username"]: r for r in csv.DictReader(f)}
    text = env.read_text()
    assert text.startswith("# keep me\nPOSTGRES_PASSWORD=pg\n")
    assert f"MQTT_INGEST_PASSWORD={rows['ingest']['password']}\n" in text and "change-me" not in text
    assert rows[stations[0].id]["role"] == "device" and rows[stations[0].id]["kind"] == "rain"

    bad = CliRunner().invoke(app, ["devices", "credentials", "--csv", str(stations_csv), "--district",
                                   "--out", str(out)])
    assert bad.exit_code == 2 and "choose one" in bad.output


def test_upsert_env_file_appends_missing_keys(tmp_path: Path):
    env = tmp_path / ".env"
    upsert_env_file(env, {"A": "1"})
    upsert_env_file(env, {"A": "2", "B": "3"})
    assert env.read_text() == "A=2\nB=3\n"
