from datetime import timedelta

import pytest

from core.payload import Rejected, decode, encode, encode_batch
from core.timeutil import utcnow
from tests.conftest import GAUGE, RESERVOIR

pytestmark = pytest.mark.unit  # the wire format alone

STATIONS = {s.id: s for s in (GAUGE, RESERVOIR)}
NOW = utcnow()
TS = "2026-06-28T14:05:00+08:00"


def test_single_form_gives_one_reading_per_metric():
    got = decode("water/reservoir/RS9001",
                 b'{"ts": "%s", "values": {"water_level_m": 52.31, "inflow_m3s": 3}}' % TS.encode(), STATIONS, NOW)
    assert [(r.metric, r.value) for r in got] == [("water_level_m", 52.31), ("inflow_m3s", 3.0)]
    assert got[0].ts.isoformat() == "2026-06-28T06:05:00+00:00"
    assert got[0].kind == "reservoir" and got[0].station_id == "RS9001"


def test_batch_form_and_round_trip_of_encoders():
    t0 = NOW - timedelta(minutes=10)
    rows = [(t0, {"rain_mm": 0.5}), (t0 + timedelta(minutes=5), {"rain_mm": 1.5})]
    got = decode("water/rain/RG9001", encode_batch(rows), STATIONS, NOW)
    assert [(r.ts, r.value) for r in got] == [(t0, 0.5), (t0 + timedelta(minutes=5), 1.5)]
    assert decode("water/rain/RG9001", encode(t0, {"rain_mm": 2}), STATIONS, NOW)[0].value == 2.0


@pytest.mark.parametrize("topic,payload,reason", [
    ("water/rain/RG9001", b"{not json", "invalid_json"),
    ("water/rain/RG9001", b"\xff\xfe\x00", "invalid_utf8"),
    ("water/rain/RG9001", b'{"ts": "%s", "values": {"rain_mm": NaN}}' % TS.encode(), "not_finite"),
    ("water/rain/RG9001", b'{"ts": "%s", "values": {"rain_mm": Infinity}}' % TS.encode(), "not_finite"),
    ("water/rain/RG9001", b'{"ts": "%s", "values": {"rain_mm": 1e308}}' % TS.encode(), "out_of_range"),
    ("water/rain/RG9001", b'{"ts": "%s", "values": {"rain_mm": -1}}' % TS.encode(), "out_of_range"),
    ("water/rain/RG9001", b'{"ts": "%s", "values": {"rain_mm": "1.0"}}' % TS.encode(), "bad_value"),
    ("water/rain/RG9001", b'{"ts": "%s", "values": {"rain_mm": true}}' % TS.encode(), "bad_value"),
    ("water/rain/RG9001", b'{"ts": "%s", "values": {"water_level_m": 1}}' % TS.encode(), "unknown_metric"),
    ("water/rain/XX0000", b'{"ts": "%s", "values": {"rain_mm": 1}}' % TS.encode(), "unknown_station"),
    ("water/river/RG9001", b'{"ts": "%s", "values": {"rain_mm": 1}}' % TS.encode(), "kind_mismatch"),
    ("water/lake/RG9001", b'{}', "unknown_kind"),
    ("water/rain", b'{}', "bad_topic"),
    ("water/rain/RG9001", b'{"station_id": "RG9002", "ts": "%s", "values": {"rain_mm": 1}}' % TS.encode(),
     "station_mismatch"),
    ("water/rain/RG9001", b'{"ts": "2999-01-01T00:00:00+00:00", "values": {"rain_mm": 1}}', "future_timestamp"),
    ("water/rain/RG9001", b'{"ts": "1999-12-31T00:00:00+00:00", "values": {"rain_mm": 1}}', "too_old"),
    ("water/rain/RG9001", b'{"ts": "2026-06-28T14:05:00", "values": {"rain_mm": 1}}', "bad_timestamp"),
    ("water/rain/RG9001", b'{"values": {"rain_mm": 1}}', "bad_timestamp"),
    ("water/rain/RG9001", b'[1, 2]', "bad_schema"),
    ("water/rain/RG9001", b'{"ts": "%s", "values": {}}' % TS.encode(), "bad_schema"),
    ("water/rain/RG9001", b'{"readings": []}', "bad_schema"),
    ("water/rain/RG9001", b'{"ts": "%s", "values": {"rain_mm": 1}, "x": "%s"}' % (TS.encode(), b"a" * 300_000),
     "oversized"),
])
def test_each_kind_of_garbage_is_rejected_with_its_reason(topic, payload, reason):
    with pytest.raises(Rejected) as exc:
        decode(topic, payload, STATIONS, NOW)
    assert exc.value.reason == reason
    assert exc.value.detail


def test_one_bad_value_rejects_the_whole_message():
    payload = b'{"ts": "%s", "values": {"water_level_m": 52.0, "inflow_m3s": -5}}' % TS.encode()
    with pytest.raises(Rejected, match="inflow_m3s"):
        decode("water/reservoir/RS9001", payload, STATIONS, NOW)
