"""SL 651-2014 and HJ 212-2017 codecs: published example frames, round trips, framing under splits and noise."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from gateway import hj212, sl651
from gateway.crc import crc16_hj212, crc16_modbus
from gateway.protocol import FrameError, Junk

# Example frames of public SL 651-2014 material (an open implementation's device samples), CRCs checked here.
SL651_KEEPALIVE = "7E7E01001234567812342F0008020003591011155111036BCA"
SL651_TEST = ("7E7E010012345678123430002B020003591011154947F1F1001234567848F0F0591011154920190000052619000005392300"
              "000127381211150320FA")
SL651_HOURLY = ("7E7E05001122334403E8340068020033170718110014F1F1001122334448F0F01707181005F4600500000014FFFFFFFFFF0000"
                "F0F017071811002619000040F0F01707181005F5C0000C000C001C00310031FFFFFFFFFFFFFFFFFFFF00310031F0F01707"
                "18110039230001049020190000403812109903F502")
# The manual-data (35) sample of the same material: its CRC is wrong (computed D76F, sent 4602).
SL651_MANUAL_BAD_CRC = "7E7E0100123456781234350011020004591011155145F2F251312E32333420034602"
# HJ 212-2017's own example of the check code: the data segment's CRC is 1C80.
HJ212_EXAMPLE = (b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
                 b"CP=&&RtdInterval=30&&1C80\r\n")


def test_published_crcs():
    for text in (SL651_KEEPALIVE, SL651_TEST, SL651_HOURLY):
        frame = bytes.fromhex(text)
        assert crc16_modbus(frame[:-2]) == int.from_bytes(frame[-2:], "big")
    assert crc16_hj212(HJ212_EXAMPLE[6:-6]) == 0x1C80
    assert crc16_modbus(b"123456789") == 0x4B37  # the CRC16/MODBUS check value


def test_sl651_test_report_decodes():
    msg = sl651.decode(bytes.fromhex(SL651_TEST))
    assert (msg.device, msg.password, msg.function, msg.serial) == ("0012345678", "1234", "30", 3)
    assert msg.station_type == "H"
    assert msg.sent_local == datetime(2059, 10, 11, 15, 49, 47)
    got = {(o.code, o.value) for o in msg.observations}
    assert got == {("20", 0.5), ("26", 0.5), ("39", 0.127), ("38", 11.15)}
    assert {o.local_time for o in msg.observations} == {datetime(2059, 10, 11, 15, 49)}
    assert msg.bad_elements == []


def test_sl651_hourly_report_has_five_minute_series():
    msg = sl651.decode(bytes.fromhex(SL651_HOURLY))
    rain = [(o.local_time.minute, o.value) for o in msg.observations if o.code == "F4"]
    # twelve 5-minute amounts from 10:05, FF = missing: 0.5, 0, 0, 0, 2.0, (5 missing), 0, 0
    assert rain == [(5, 0.5), (10, 0.0), (15, 0.0), (20, 0.0), (25, 2.0), (55, 0.0), (0, 0.0)]
    level = {(o.local_time.hour, o.value) for o in msg.observations if o.code == "39"}
    assert level == {(11, 10.49)}
    assert [o.value for o in msg.observations if o.code == "38"] == [10.99]


def test_sl651_keepalive_needs_no_answer():
    msg = sl651.decode(bytes.fromhex(SL651_KEEPALIVE))
    assert msg.function == "2F" and not msg.carries_data and msg.observations == []
    assert sl651.confirm(msg, datetime(2026, 1, 1)) is None


def test_sl651_bad_crc_is_refused_with_a_nak():
    out = sl651.Sl651Framer().feed(bytes.fromhex(SL651_MANUAL_BAD_CRC))
    assert len(out) == 1 and isinstance(out[0], Junk) and out[0].reason == "bad_crc"
    nak = out[0].nak
    assert nak[:2] == b"\x7e\x7e" and nak[2:7] == bytes.fromhex("0012345678") and nak[-3] == sl651.NAK
    assert crc16_modbus(nak[:-2]) == int.from_bytes(nak[-2:], "big")
    assert nak[11] >> 4 == 8  # down


def test_sl651_confirmation_echoes_serial_and_function():
    msg = sl651.decode(bytes.fromhex(SL651_TEST))
    reply = sl651.confirm(msg, datetime(2026, 2, 29 - 1, 7, 59, 59))
    assert reply[2:7] == bytes.fromhex("0012345678") and reply[7] == 0x01 and reply[10] == 0x30
    assert reply[14:16] == b"\x00\x03" and reply[16:22] == bytes.fromhex("260228075959") and reply[-3] == sl651.EOT


def _sl651_report(serial: int = 7, values=((0x20, 1.5, 3, 1), (0x39, 12.345, 4, 3), (0x38, 12.1, 2, 2))) -> bytes:
    t = datetime(2024, 2, 29, 0, 5)
    return sl651.encode("0012345678", 0x32, serial, t, password="1234", station_type=0x48,
                        groups=[(t, list(values))])


def test_sl651_round_trip_and_negative_values():
    frame = _sl651_report(values=((0x39, -1.25, 4, 3), (0x38, 12.1, 2, 2)))
    [got] = sl651.Sl651Framer().feed(frame)
    msg = sl651.decode(got)
    assert [(o.code, o.value) for o in msg.observations] == [("39", -1.25), ("38", 12.1)]
    assert msg.sent_local == datetime(2024, 2, 29, 0, 5)


def test_sl651_m3_packets_merge():
    frame = _sl651_report()
    packets = sl651.split_m3(frame, 10)
    assert len(packets) > 2 and packets[0][13] == sl651.SYN and packets[-1][-3] == sl651.ETX
    framer = sl651.Sl651Framer()
    parts = [sl651.decode(f) for f in framer.feed(b"".join(packets))]
    assert [p.part for p in parts] == [(len(packets), i) for i in range(1, len(packets) + 1)]
    whole = sl651.merge(list(reversed(parts)))
    assert [(o.code, o.value) for o in whole.observations] == [("20", 1.5), ("39", 12.345), ("38", 12.1)]


def test_sl651_uniform_interval_batch():
    t = datetime(2026, 6, 28, 8, 0)
    body = bytearray(b"\x00\x01" + sl651.encode_time(t, True) + b"\xf1\xf1" + bytes.fromhex("0012345678") + b"\x50")
    body += b"\xf0\xf0" + sl651.encode_time(t, False) + b"\x04\x18" + bytes.fromhex("000005")
    body += b"\x20\x19" + b"".join(sl651.encode_bcd(v, 3, 1) for v in (0.5, 1.0, 0.0)) + b"\xff\xff\xff"
    head = b"\x7e\x7e\x01" + bytes.fromhex("0012345678") + b"\x12\x34\x31"
    frame = sl651._frame(head, len(body), sl651.STX, b"", bytes(body), sl651.ETX)
    msg = sl651.decode(frame)
    assert [(o.local_time.minute, o.value) for o in msg.observations] == [(0, 0.5), (5, 1.0), (10, 0.0)]


def test_sl651_bad_bcd_costs_only_that_element():
    frame = bytearray(_sl651_report())
    i = frame.index(bytes([0x39, 0x23]))
    frame[i + 2] = 0x1A  # not BCD
    frame = sl651._frame(bytes(frame[:11]), ((frame[11] & 0xF) << 8) | frame[12], sl651.STX, b"",
                         bytes(frame[14:-3]), sl651.ETX)
    msg = sl651.decode(frame)
    assert [o.code for o in msg.observations] == ["20", "38"] and msg.bad_elements[0].startswith("39")


def test_sl651_downstream_frame_is_refused():
    msg = sl651.decode(bytes.fromhex(SL651_TEST))
    with pytest.raises(FrameError):
        sl651.decode(sl651.confirm(msg, datetime(2026, 1, 1)))


def test_hj212_example_and_answer():
    [frame] = hj212.Hj212Framer().feed(HJ212_EXAMPLE)
    msg = hj212.decode(frame)
    assert (msg.device, msg.function, msg.password, msg.wants_answer) == ("010000A8900016F000169DC0", "1062",
                                                                          "100000", True)
    answer = hj212.confirm(msg, datetime(2026, 1, 1))
    assert b"CN=9013" in answer and b"QN=20160801085857223" in answer
    assert hj212.Hj212Framer().feed(answer) == [answer]


def test_hj212_values_flags_and_unknown_codes():
    frame = hj212.encode("MN01", "2011", datetime(2026, 1, 1, 0, 0), {
        "w01001": (7.21, "N"), "w01003": (3.5, "C"), "w77777": (1, "N")})
    msg = hj212.decode(frame)
    assert [(o.code, o.value, o.flag) for o in msg.observations] == [
        ("w01001", 7.21, "N"), ("w01003", 3.5, "C"), ("w77777", 1.0, "N")]
    assert b"CN=9014" in hj212.confirm(msg, datetime(2026, 1, 1))


def test_hj212_hourly_uses_avg_and_bad_values_cost_only_themselves():
    seg = ("QN=20260101000000000;ST=21;CN=2061;PW=1;MN=M;Flag=4;CP=&&DataTime=20251231230000;"
           "w01001-Min=6.9,w01001-Avg=7.1,w01001-Max=7.3,w01001-Flag=N;w21003-Avg=abc,w21003-Flag=N;"
           "w01010-Avg=12.5&&")
    msg = hj212.decode(hj212.wrap(seg))
    assert [(o.code, o.value) for o in msg.observations] == [("w01001", 7.1), ("w01010", 12.5)]
    assert msg.bad_elements and "w21003" in msg.bad_elements[0] and not msg.wants_answer


def test_hj212_split_packets_merge():
    t = datetime(2026, 1, 1)
    a = hj212.decode(hj212.encode("M", "2011", t, {"w01001": (7.0, "N")}, part=(2, 1)))
    b = hj212.decode(hj212.encode("M", "2011", t, {"w01003": (2.0, "N")}, part=(2, 2)))
    assert a.observations == [] and hj212.confirm(a, t, final=False) is None
    whole = hj212.merge([b, a])
    assert [(o.code, o.value) for o in whole.observations] == [("w01001", 7.0), ("w01003", 2.0)]


def test_hj212_lying_length_and_endless_frame():
    good = hj212.encode("M", "2011", datetime(2026, 1, 1), {"w01001": (7.0, "N")})
    liar = b"##0050QN=1;CP=&&&&"  # says 50 bytes, is shorter: the next frame's bytes make a bad CRC
    framer = hj212.Hj212Framer(max_frame_bytes=4096)
    out = framer.feed(liar + good)
    assert [x for x in out if isinstance(x, bytes)] == [good]
    out = framer.feed(b"##9999" + b"x" * 100)
    assert isinstance(out[0], Junk) and out[0].reason == "oversized" and framer.buffered < 200


# -- framing properties --------------------------------------------------------------------------------------------
def _frames_sl651(n: int) -> list[bytes]:
    return [_sl651_report(serial=i) for i in range(n)]


def _frames_hj212(n: int) -> list[bytes]:
    return [hj212.encode(f"MN{i}", "2011", datetime(2026, 1, 1), {"w01001": (7 + i / 100, "N")}) for i in range(n)]


# Noise never contains a start sequence, so every frame must come out whole.
_noise_sl651 = st.binary(max_size=40).map(lambda b: b.replace(b"\x7e", b"\x00"))
_noise_hj212 = st.binary(max_size=40).map(lambda b: b.replace(b"#", b"\x00"))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points + [len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


@pytest.mark.parametrize("module,frames,noise", [(sl651, _frames_sl651, _noise_sl651),
                                                  (hj212, _frames_hj212, _noise_hj212)])
@hsettings(max_examples=150, deadline=None)
@given(data=st.data())
def test_random_splits_and_noise_lose_no_frame(module, frames, noise, data):
    sent = frames(data.draw(st.integers(1, 6)))
    stream = b"".join(data.draw(noise) + f for f in sent) + data.draw(noise)
    cuts = data.draw(st.lists(st.integers(0, 10_000), max_size=30))
    framer = module.Sl651Framer() if module is sl651 else module.Hj212Framer()
    got = []
    for piece in _split(stream, cuts):
        got += framer.feed(piece)
    assert [x for x in got if isinstance(x, bytes)] == sent
    assert sum(len(x.data) for x in got if isinstance(x, Junk)) + sum(map(len, sent)) == len(stream)


@pytest.mark.parametrize("module", [sl651, hj212])
@hsettings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=10))
def test_arbitrary_bytes_never_crash_the_framer_or_decoder(module, blob, cuts):
    framer = module.Sl651Framer(max_frame_bytes=300) if module is sl651 else module.Hj212Framer(max_frame_bytes=300)
    prefix = b"\x7e\x7e" if module is sl651 else b"##0"
    for piece in _split(prefix + blob, cuts):
        for ev in framer.feed(piece):
            if isinstance(ev, bytes):
                try:
                    module.decode(ev)
                except FrameError:
                    pass
    assert framer.buffered <= 300


@hsettings(max_examples=100, deadline=None)
@given(values=st.lists(st.tuples(st.sampled_from([0x20, 0x39, 0x27, 0x38]),
                                 st.integers(-99_999, 999_999), st.integers(0, 3)), min_size=1, max_size=8))
def test_sl651_encode_decode_round_trip(values):
    elements = [(ident, n / 10 ** dec, 4, dec) for ident, n, dec in values]
    msg = sl651.decode(_sl651_report(values=elements))
    assert [(o.code, o.value) for o in msg.observations] == [(f"{i:02X}", v) for i, v, _, _ in elements]
