"""HJ 212-2017 (data transmission of online pollutant monitoring): framing, decoding, the centre's answers.

Frame (docs/gateway.md, "HJ 212"): ``##`` | data segment length, 4 decimal digits | data segment (ASCII) |
CRC16 of the data segment, 4 hex digits (HJ 212's own variant, gateway/crc.py) | CR LF. The data segment:
``QN=yyyyMMddHHmmsszzz;ST=21;CN=2011;PW=123456;MN=...;Flag=5;[PNUM=2;PNO=1;]CP=&&DataTime=...;
w01001-Rtd=7.21,w01001-Flag=N;...&&``. Flag bit 0 asks for an answer, bit 1 marks a packet of a split message
(PNUM packets, this one PNO). A value's data flag (N normal; F, M, S, D, C, T, B...) travels as ``code-Flag``.
"""

from __future__ import annotations

from datetime import datetime

from gateway.crc import crc16_hj212
from gateway.protocol import FrameError, Junk, Message, Observation

NAME = "hj212"
START = b"##"
END = b"\r\n"
MAX_DATA = 9999
# Data uploads and which value of each code they carry (real-time: Rtd; minute/hour/day statistics: Avg).
DATA_CNS = {"2011": "Rtd", "2051": "Avg", "2061": "Avg", "2031": "Avg"}
VALUE_SUFFIXES = ("Rtd", "Avg", "Min", "Max", "Cou")


class Hj212Framer:
    def __init__(self, max_frame_bytes: int = MAX_DATA + 12) -> None:
        self.buf = bytearray()
        self.max_frame = max_frame_bytes
        self.quiet = 0

    @property
    def buffered(self) -> int:
        return len(self.buf)

    def _garbage(self, out: list[bytes | Junk], n: int) -> None:
        skip = min(self.quiet, n)
        self.quiet -= skip
        if n > skip:
            out.append(Junk(bytes(self.buf[skip:n]), "garbage", "bytes outside any frame"))
        del self.buf[:n]

    def feed(self, data: bytes) -> list[bytes | Junk]:
        buf = self.buf
        buf += data
        out: list[bytes | Junk] = []
        while True:
            start = buf.find(START)
            if start < 0:
                keep = 1 if buf[-1:] == b"#" else 0
                if len(buf) > keep:
                    self._garbage(out, len(buf) - keep)
                return out
            if start:
                self._garbage(out, start)
            if len(buf) < 6:
                return out
            digits = bytes(buf[2:6])
            if not digits.isdigit():
                out.append(Junk(bytes(buf[:6]), "bad_frame", f"length {digits!r} is not four digits"))
                del buf[:1]
                self.quiet = 5
                continue
            total = 6 + int(digits) + 6
            if total > self.max_frame:
                out.append(Junk(bytes(buf[:6]), "oversized", f"length field says {total} bytes, limit "
                                                                f"{self.max_frame}"))
                del buf[:1]
                self.quiet = 5
                continue
            if len(buf) < total:
                return out
            frame = bytes(buf[:total])
            why = _check(frame)
            if why:
                out.append(Junk(frame, why[0], why[1]))
                del buf[:1]
                self.quiet = total - 1
                continue
            out.append(frame)
            del buf[:total]


def _check(frame: bytes) -> tuple[str, str] | None:
    if frame[-2:] != END:
        return "bad_frame", "frame does not end with CR LF where its length says"
    crc_text = frame[-6:-2]
    try:
        got = int(crc_text, 16)
    except ValueError:
        return "bad_crc", f"CRC {crc_text!r} is not four hex digits"
    want = crc16_hj212(memoryview(frame)[6:-6])
    if got != want:
        return "bad_crc", f"CRC {got:04X}, computed {want:04X}"
    return None


def _fields(text: str) -> dict[str, str]:
    out = {}
    for item in text.split(";"):
        if item:
            k, sep, v = item.partition("=")
            if sep:
                out[k.strip()] = v
    return out


def _time(text: str, what: str) -> datetime:
    try:
        if len(text) < 14 or not text[:14].isdigit():
            raise ValueError(text)
        return datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    except ValueError:
        raise FrameError("bad_time", f"{what} {text[:32]!r} is not yyyyMMddHHmmss") from None


def decode(frame: bytes) -> Message:
    try:
        seg = frame[6:-6].decode("ascii")
    except UnicodeDecodeError:
        raise FrameError("bad_frame", "data segment is not ASCII") from None
    head, sep, cp = seg.partition("CP=&&")
    if not sep or not cp.endswith("&&"):
        raise FrameError("bad_frame", "no CP=&&...&& in the data segment")
    h = _fields(head)
    mn, cn = h.get("MN"), h.get("CN")
    if not mn or not cn:
        raise FrameError("bad_frame", "data segment has no MN or no CN")
    try:
        flag = int(h.get("Flag", "0"))
    except ValueError:
        raise FrameError("bad_frame", f"Flag {h.get('Flag')!r} is not a number") from None
    qn = h.get("QN")
    msg = Message(protocol=NAME, device=mn, password=h.get("PW"), function=cn, raw=frame, qn=qn,
                  wants_answer=bool(flag & 1), carries_data=cn in DATA_CNS)
    if qn:
        try:
            msg.sent_local = _time(qn, "QN")
        except FrameError:
            msg.bad_elements.append(f"QN {qn[:32]!r} is not a time")
    if flag & 2:
        try:
            msg.part = (int(h["PNUM"]), int(h["PNO"]))
        except (KeyError, ValueError):
            raise FrameError("bad_frame", "split packet (Flag bit 1) without PNUM and PNO") from None
        if not 1 <= msg.part[1] <= msg.part[0]:
            raise FrameError("bad_frame", f"packet {msg.part[1]} of {msg.part[0]}")
    msg.cp = cp[:-2]
    if msg.carries_data and msg.part is None:
        _values(msg, cp[:-2])
    return msg


def _values(msg: Message, cp: str) -> None:
    want = DATA_CNS[msg.function]
    when: datetime | None = None
    values: dict[str, float] = {}
    flags: dict[str, str] = {}
    order: list[str] = []
    for group in cp.split(";"):
        for item in group.split(","):
            if not item:
                continue
            key, sep, val = item.partition("=")
            if not sep:
                msg.bad_elements.append(f"{key[:32]!r}: no '='")
                continue
            if key == "DataTime":
                when = _time(val, "DataTime")
                continue
            code, dash, suffix = key.rpartition("-")
            if not dash:
                continue  # other CP fields (RtdInterval, ...)
            if suffix == "Flag":
                flags[code] = val.strip()
            elif suffix == want or (suffix == "Rtd" and code not in values):
                try:
                    v = float(val)
                except ValueError:
                    msg.bad_elements.append(f"{code}: value {val[:32]!r} is not a number")
                    continue
                if v != v or v in (float("inf"), float("-inf")):
                    msg.bad_elements.append(f"{code}: value {val[:32]!r} is not finite")
                    continue
                if code not in values:
                    order.append(code)
                values[code] = v
    if values and when is None:
        raise FrameError("bad_time", "values without DataTime")
    for code in order:
        msg.observations.append(Observation(code, when, values[code], flags.get(code, "N")))


def merge(parts: list[Message]) -> Message:
    """A split message (PNUM packets): the CP fields of all packets, in packet order, decoded as one."""
    parts = sorted(parts, key=lambda m: m.part[1] if m.part else 0)
    first = parts[0]
    cp = ";".join(p.cp for p in parts if p.cp)
    msg = Message(protocol=NAME, device=first.device, password=first.password, function=first.function,
                  raw=b"".join(m.raw for m in parts), qn=first.qn, wants_answer=any(m.wants_answer for m in parts),
                  carries_data=first.carries_data, sent_local=first.sent_local)
    if msg.carries_data:
        _values(msg, cp)
    return msg


def wrap(segment: str) -> bytes:
    data = segment.encode("ascii")
    if len(data) > MAX_DATA:
        raise ValueError(f"data segment of {len(data)} bytes: split it (PNUM/PNO)")
    return b"##%04d" % len(data) + data + b"%04X" % crc16_hj212(data) + END


def confirm(msg: Message, now_local: datetime, final: bool = True) -> bytes | None:
    """CN=9014 (data answer) for a data upload that asked for one; 9013 (notification answer) for anything else
    that asked. Split packets are answered once, when the whole message is received."""
    if not msg.wants_answer or not final:
        return None
    cn = "9014" if msg.carries_data else "9013"
    qn = msg.qn or now_local.strftime("%Y%m%d%H%M%S000")
    return wrap(f"QN={qn};ST=91;CN={cn};PW={msg.password or ''};MN={msg.device};Flag=4;CP=&&&&")


def encode(mn: str, cn: str, data_time: datetime, values: dict[str, tuple[float, str]], *, password: str = "123456",
           st: str = "21", qn_time: datetime | None = None, answer: bool = True,
           part: tuple[int, int] | None = None) -> bytes:
    """A device → centre upload (simulated devices, tests). ``values``: code → (value, data flag)."""
    suffix = DATA_CNS.get(cn, "Rtd")
    qn = (qn_time or data_time).strftime("%Y%m%d%H%M%S") + "000"
    flag = 4 | (1 if answer else 0) | (2 if part else 0)
    packet = f"PNUM={part[0]};PNO={part[1]};" if part else ""
    body = ";".join(f"{code}-{suffix}={v:g},{code}-Flag={f}" for code, (v, f) in values.items())
    cp = f"DataTime={data_time.strftime('%Y%m%d%H%M%S')}" + (f";{body}" if body else "")
    return wrap(f"QN={qn};ST={st};CN={cn};PW={password};MN={mn};Flag={flag};{packet}CP=&&{cp}&&")


class Hj212Codec:
    name = NAME

    def framer(self, max_frame_bytes: int) -> Hj212Framer:
        return Hj212Framer(max_frame_bytes)

    decode = staticmethod(decode)
    confirm = staticmethod(confirm)
    merge = staticmethod(merge)


CODEC = Hj212Codec()
