"""The gateway against a real Mosquitto: simulated devices over TCP → gateway → broker → ingest → store.

A report counts as received only when the device got its confirmation; these tests check that every confirmed
report is in the store, that nothing a device sends stops the gateway, and the limits."""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime, timedelta, timezone

import pytest

from core.mqtt import wait_for
from core.registry.devices import DeviceIn, DeviceRepo
from gateway import hj212, sl651
from gateway.server import GatewayService
from gateway.simulated import SimulatedDevice, hj212_reports, sl651_reports
from ingest import Ingestor

UTC = timezone.utc
# Data times at awkward local moments: 29 February 07:55-08:05 (across the hydrological day's start at 08:00,
# and the UTC date: 23:55 UTC on the 28th).
LEAP_MORNING = datetime(2024, 2, 29, 7, 55)
CLOCK = datetime(2024, 2, 29, 0, 10, tzinfo=UTC)  # 08:10 in Beijing
RTU, ANALYSER = "0012345678", "VW9001-QA"


@pytest.fixture
def devices(registry, stations):
    repo = DeviceRepo(registry.engine)
    now = CLOCK
    repo.add(DeviceIn(protocol="sl651", address=RTU, password="1234", station_ids=["RG9001", "RV9001"]), now)
    repo.add(DeviceIn(protocol="hj212", address=ANALYSER, password="123456", station_ids=["VW9001"]), now)
    return repo


@pytest.fixture
def ingestor(settings, registry, store, stations):
    ing = Ingestor(settings, registry, store)
    ing.start()
    assert ing.wait_connected(10)
    yield ing
    ing.stop()


def _gateway(settings, registry, **kw) -> GatewayService:
    s = settings.model_copy(update={"gateway_host": "127.0.0.1", **kw})
    gw = GatewayService(s, registry, clock=lambda: CLOCK, ports={"sl651": 0, "hj212": 0})
    gw.start()
    assert gw.wait_connected(10)
    return gw


@pytest.fixture
def gateway(settings, registry, devices):
    gw = _gateway(settings, registry)
    yield gw
    gw.stop()


def _run(*devs: SimulatedDevice, timeout: float = 60) -> None:
    async def main():
        await asyncio.wait_for(asyncio.gather(*(d.run() for d in devs)), timeout)
    asyncio.run(main())


def test_mixed_fleet_reaches_the_store(gateway, ingestor, store, registry):
    rtu = SimulatedDevice("sl651", "127.0.0.1", gateway.ports["sl651"],
                          sl651_reports(RTU, "1234", ["rain", "river"], LEAP_MORNING, 5, timedelta(minutes=5),
                                        m3_every=2))
    qa = SimulatedDevice("hj212", "127.0.0.1", gateway.ports["hj212"],
                         hj212_reports(ANALYSER, "123456", ["village_water"], LEAP_MORNING, 4, timedelta(minutes=5),
                                       flag_every=4))
    _run(rtu, qa)
    assert len(rtu.confirmed) == 5 and len(qa.confirmed) == 4
    t0, t1 = datetime(2024, 2, 28, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC)
    assert wait_for(lambda: len(store.query("RV9001", "water_level_m", t0, t1)) == 5, 15)
    levels = store.query("RV9001", "water_level_m", t0, t1)
    assert [r.value for r in levels] == [r.values["39"] for r in rtu.reports]
    assert levels[0].ts == datetime(2024, 2, 28, 23, 55, tzinfo=UTC)  # 07:55 Beijing time
    rain = store.query("RG9001", "rain_mm", t0, t1)
    assert [r.value for r in rain] == [r.values["20"] for r in rtu.reports]
    assert store.query("RV9001", "rain_mm", t0, t1) == []  # rain goes to the rain gauge's station only
    # the fourth analyser report was flagged C (calibration): kept out of the readings, kept as a dead letter
    assert wait_for(lambda: len(store.query("VW9001", "ph", t0, t1)) == 3, 15)
    assert wait_for(lambda: any(d.reason == "flagged_values" for d in registry.list_dead_letters()), 5)
    flagged = [d for d in registry.list_dead_letters() if d.reason == "flagged_values"]
    assert len(flagged) == 1 and "flag C (calibration)" in flagged[0].detail
    assert gateway.health_values[f"sl651:{RTU}"]["battery_v"] == 12.4  # 12.396 sent with two decimals
    assert gateway.stats["packet"] >= 2  # M3 packets were reassembled


def test_unknown_codes_are_counted_and_never_cost_the_others(gateway, ingestor, store, devices):
    frame = hj212.encode(ANALYSER, "2011", LEAP_MORNING, {"w01001": (7.1, "N"), "w77777": (3.0, "N"),
                                                          "w01014": (420.0, "N")}, password="123456")
    dev = SimulatedDevice("hj212", "127.0.0.1", gateway.ports["hj212"], [_report(frame)])
    _run(dev)
    assert len(dev.confirmed) == 1
    t0 = datetime(2024, 2, 28, tzinfo=UTC)
    assert wait_for(lambda: [r.value for r in store.query("VW9001", "ph", t0, t0 + timedelta(days=2))] == [7.1], 15)
    gateway.directory.flush()
    assert devices.get("hj212", ANALYSER).unmapped == {"w77777": 1, "w01014": 1}


def _report(*frames: bytes):
    from gateway.simulated import Report
    return Report(list(frames), "manual")


def _exchange(port: int, data: bytes, read_for: float = 2.0) -> tuple[bytes, bool]:
    """Send ``data``; collect what comes back until the gateway closes or ``read_for`` passes; (bytes, closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(read_for)
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return got, True
                got += chunk
        except (socket.timeout, ConnectionResetError):
            return got, False


def test_bad_input_is_dead_lettered_and_costs_nothing_else(gateway, ingestor, store, registry):
    port = gateway.ports["sl651"]
    good = sl651.encode(RTU, 0x32, 1, LEAP_MORNING, password="1234", station_type=0x48,
                        groups=[(LEAP_MORNING, [(0x39, 9.5, 4, 3)])])
    bad_crc = good[:-1] + bytes([good[-1] ^ 0xFF])
    got, closed = _exchange(port, b"\x00garbage\x7e" + bad_crc + b"noise" + good, read_for=1.5)
    frames = sl651.Sl651Framer().feed(got)
    assert [f[-3] for f in frames] == [sl651.NAK, sl651.EOT]  # NAK for the damaged copy, EOT for the good one
    assert not closed
    # an unknown station, then a wrong password: refused, dead-lettered, connection closed after three
    stranger = sl651.encode("0099999999", 0x32, 1, LEAP_MORNING, password="1234",
                            groups=[(LEAP_MORNING, [(0x39, 1.0, 4, 3)])])
    got, closed = _exchange(port, stranger * 5)
    assert got == b"" and closed
    wrong = sl651.encode(RTU, 0x32, 2, LEAP_MORNING, password="9999", groups=[(LEAP_MORNING, [(0x39, 1.0, 4, 3)])])
    got, closed = _exchange(port, wrong * 3)
    assert got == b"" and closed
    reasons = lambda: sorted(d.reason for d in registry.list_dead_letters())  # noqa: E731
    assert wait_for(lambda: reasons().count("unknown_device") == 3 and reasons().count("wrong_password") == 3
                    and "bad_crc" in reasons() and "garbage" in reasons(), 10)
    crc = next(d for d in registry.list_dead_letters() if d.reason == "bad_crc")
    assert bad_crc.hex().upper()[:40] in crc.detail and crc.payload.startswith(bad_crc[:20])
    t0 = datetime(2024, 2, 28, tzinfo=UTC)
    assert wait_for(lambda: [r.value for r in store.query("RV9001", "water_level_m", t0, t0 + timedelta(days=2))]
                    == [9.5], 15)


def test_connection_cap_idle_timeout_and_rate(settings, registry, devices):
    gw = _gateway(settings, registry, gateway_max_connections=2, gateway_idle_timeout_s=0.5,
                  gateway_max_frames_per_s=20)
    try:
        port = gw.ports["hj212"]
        a = socket.create_connection(("127.0.0.1", port))
        b = socket.create_connection(("127.0.0.1", port))
        assert wait_for(lambda: gw.active == 2, 5)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            assert c.recv(10) == b""  # over the cap: closed at once
        # idle ones are closed after the timeout
        a.settimeout(5)
        b.settimeout(5)
        assert a.recv(10) == b"" and b.recv(10) == b""
        assert wait_for(lambda: gw.active == 0, 5)
        # 30 keep-alive-like frames at 20 per second take about 1.5 s: slowed, not refused
        ping = hj212.wrap(f"QN=20240229080000000;ST=21;CN=9999;PW=123456;MN={ANALYSER};Flag=5;CP=&&&&")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            import time
            began = time.monotonic()
            s.sendall(ping * 30)
            got = b""
            while got.count(b"\r\n") < 30:
                got += s.recv(65536)
            assert time.monotonic() - began > 0.9
            assert got.count(b"CN=9013") == 30
    finally:
        gw.stop()


def test_confirmation_waits_for_the_broker(own_settings, own_broker, registry, devices):
    """Broker down: the device gets no confirmation (and sends again); broker back: confirmed."""
    gw = _gateway(own_settings, registry, gateway_publish_timeout_s=1.0)
    try:
        own_broker.stop()
        assert wait_for(lambda: not gw.publisher.connected.is_set(), 10)
        frame = sl651.encode(RTU, 0x32, 1, LEAP_MORNING, password="1234",
                             groups=[(LEAP_MORNING, [(0x39, 9.5, 4, 3)])])
        got, _closed = _exchange(gw.ports["sl651"], frame, read_for=2.5)
        assert got == b""  # not confirmed: the broker never acknowledged
        own_broker.start()
        assert gw.wait_connected(15)
        dev = SimulatedDevice("sl651", "127.0.0.1", gw.ports["sl651"], [_report(frame)])
        _run(dev)
        assert len(dev.confirmed) == 1
    finally:
        gw.stop()


def test_device_clock_far_off_is_flagged(settings, registry, devices):
    gw = _gateway(settings, registry, gateway_clock_drift_s=60)
    try:
        late = datetime(2024, 2, 29, 10, 0)  # the device thinks it is 10:00; it is 08:10
        frame = sl651.encode(RTU, 0x2F, 1, late, password="1234")
        _exchange(gw.ports["sl651"], frame, read_for=0.5)
        assert wait_for(lambda: gw.stats["clock_drift"] == 1, 5)
        assert gw.drift[f"sl651:{RTU}"] == pytest.approx(110 * 60)
        gw.directory.flush()
        assert devices.get("sl651", RTU).health == {"clock_drift_s": 6600.0}
    finally:
        gw.stop()


def test_split_messages_join_and_incomplete_ones_become_dead_letters(settings, registry, devices, store):
    gw = _gateway(settings, registry, gateway_multipacket_timeout_s=0.5)
    ing = Ingestor(settings, registry, store)
    ing.start()
    try:
        assert ing.wait_connected(10)
        t = LEAP_MORNING
        a = hj212.encode(ANALYSER, "2011", t, {"w01001": (7.3, "N")}, password="123456", part=(2, 1))
        b = hj212.encode(ANALYSER, "2011", t, {"w01003": (0.6, "N")}, password="123456", part=(2, 2))
        got, _ = _exchange(gw.ports["hj212"], a + b, read_for=1.0)
        assert got.count(b"CN=9014") == 1  # one answer, for the whole message
        t0 = datetime(2024, 2, 28, tzinfo=UTC)
        assert wait_for(lambda: len(store.query("VW9001", None, t0, t0 + timedelta(days=2))) == 2, 15)
        # the first of three SL 651 packets, then nothing: a dead letter once the wait is over
        frame = sl651.encode(RTU, 0x32, 9, t, password="1234", groups=[(t, [(0x39, 9.9, 4, 3), (0x38, 12.0, 2, 2)])])
        first = sl651.split_m3(frame, 10)[0]
        got, _ = _exchange(gw.ports["sl651"], first, read_for=0.5)
        assert sl651.Sl651Framer().feed(got)[0][-3] == sl651.ACK  # "continue"
        assert wait_for(lambda: any(d.reason == "incomplete_multipacket" for d in registry.list_dead_letters()), 15)
        # an endless frame (length 9999 > the limit) is refused at once; the connection still works afterwards
        ping = hj212.wrap(f"QN=20240229080000000;ST=21;CN=9999;PW=123456;MN={ANALYSER};Flag=5;CP=&&&&")
        got, closed = _exchange(gw.ports["hj212"], b"##9999" + b"x" * 5000 + ping, read_for=1.0)
        assert b"CN=9013" in got and not closed
        assert wait_for(lambda: any(d.reason == "oversized" for d in registry.list_dead_letters()), 5)
    finally:
        ing.stop()
        gw.stop()
