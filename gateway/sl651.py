"""SL 651-2014 (hydrological data communication), HEX/BCD encoding: framing, decoding, the centre's replies.

Frame (upstream, docs/gateway.md, "SL 651 (HEX/BCD encoding)"): ``7E 7E`` | centre address (1) | remote station address (5, BCD) |
password (2) | function code (1) | up/down flag (high 4 bits) + length (low 12 bits) | STX (02) or SYN (16,
then 3 bytes: packet total (12 bits) and number (12 bits), counted in the length) | body | end character |
CRC16/MODBUS over everything before it, high byte first. The body of a report: serial number (2), send time (6, BCD yyMMddHHmmss), then
elements. An element is an identifier byte and a definition byte (high 5 bits: byte count; low 3 bits: decimals)
followed by a BCD value; F0 F0 + 5 BCD bytes sets the observation time of the elements after it, F1 F1 + address +
station type names the station, 04 gives the time step of a uniform-interval batch.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

from gateway.crc import crc16_modbus
from gateway.protocol import FrameError, Junk, Message, Observation

NAME = "sl651"
SOH = b"\x7e\x7e"
STX, SYN = 0x02, 0x16
ETX, ETB, ENQ, EOT, ACK, NAK, ESC = 0x03, 0x17, 0x05, 0x04, 0x06, 0x15, 0x1B
ENDS = frozenset({ETX, ETB, ENQ, EOT, ACK, NAK, ESC})
HEADER = 14          # 7E 7E .. start character
OVERHEAD = HEADER + 3  # + end character + CRC
MAX_BODY = 0x0FFF

FUNCTIONS = {
    0x2F: "keep-alive", 0x30: "test", 0x31: "uniform interval", 0x32: "timed", 0x33: "additional",
    0x34: "hourly", 0x35: "manual", 0x36: "picture", 0x37: "real-time query", 0x38: "period query",
}
# Reports whose body carries observations (F0 F0 ... elements). 0x36 (picture) carries a JPEG: not values.
DATA_FUNCTIONS = frozenset({0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x37, 0x38})
STATION_TYPES = {0x50: "P", 0x48: "H", 0x4B: "K", 0x5A: "Z", 0x44: "D", 0x54: "T", 0x4D: "M", 0x47: "G",
                 0x51: "Q", 0x49: "I", 0x4F: "O"}
# Batches inside one element: F4 = twelve 5-minute rain amounts (1 byte each, 0.1 mm, HEX); F5..FC = twelve
# 5-minute relative water levels (2 bytes each, 0.01 m, HEX). FF / FFFF marks a missing value.
FIVE_MIN = timedelta(minutes=5)


# -- framing -----------------------------------------------------------------------------------------------------
class Sl651Framer:
    """Cuts a byte stream into CRC-checked frames; skips garbage up to the next 7E 7E."""

    def __init__(self, max_frame_bytes: int = MAX_BODY + OVERHEAD) -> None:
        self.buf = bytearray()
        self.max_frame = max_frame_bytes
        self.quiet = 0  # bytes of a refused frame already reported: not reported again as garbage

    def _garbage(self, out: list[bytes | Junk], n: int) -> None:
        skip = min(self.quiet, n)
        self.quiet -= skip
        if n > skip:
            out.append(Junk(bytes(self.buf[skip:n]), "garbage", "bytes outside any frame"))
        del self.buf[:n]

    @property
    def buffered(self) -> int:
        return len(self.buf)

    def feed(self, data: bytes) -> list[bytes | Junk]:
        buf = self.buf
        buf += data
        out: list[bytes | Junk] = []
        while True:
            start = buf.find(SOH)
            if start < 0:
                # Keep a trailing 7E: it may be the first half of the next start.
                keep = 1 if buf[-1:] == b"\x7e" else 0
                if len(buf) > keep:
                    self._garbage(out, len(buf) - keep)
                return out
            if start:
                self._garbage(out, start)
            if len(buf) < HEADER:
                return out
            length = ((buf[11] & 0x0F) << 8) | buf[12]
            start_char = buf[13]
            if start_char not in (STX, SYN):
                out.append(Junk(bytes(buf[:HEADER]), "bad_frame", f"start character {start_char:02X}, expected "
                                                                     "STX (02) or SYN (16)"))
                del buf[:1]
                continue
            total = OVERHEAD + length  # with SYN, the 3 packet bytes count in the length
            if total > self.max_frame:
                out.append(Junk(bytes(buf[:HEADER]), "oversized", f"length field says {total} bytes, limit "
                                                                     f"{self.max_frame}"))
                del buf[:1]
                continue
            if len(buf) < total:
                return out
            frame = bytes(buf[:total])
            got = (frame[-2] << 8) | frame[-1]
            want = crc16_modbus(memoryview(frame)[:-2])
            if got != want or frame[-3] not in ENDS:
                why = (f"CRC {got:04X}, computed {want:04X}" if got != want
                       else f"end character {frame[-3]:02X} is not one of ETX/ETB/ENQ/EOT/ACK/NAK/ESC")
                # The length may lie: give up one byte and look for the next frame inside (7E 7E 7E: one byte early).
                out.append(Junk(frame, "bad_crc" if got != want else "bad_frame", why, nak=_nak_for(frame)))
                del buf[:1]
                self.quiet = total - 1
                continue
            out.append(frame)
            del buf[:total]


def _nak_for(frame: bytes) -> bytes | None:
    """A NAK for a damaged frame whose header still reads as an upstream one (it asks the station to resend)."""
    if len(frame) < HEADER or frame[11] >> 4 != 0:
        return None
    addr, func = frame[3:8], frame[10]
    if not _is_bcd(addr):
        return None
    return build_down(frame[2], addr, frame[8:10], func, 0, None, NAK)


# -- values ------------------------------------------------------------------------------------------------------
def _is_bcd(b: bytes) -> bool:
    return all((x >> 4) < 10 and (x & 0x0F) < 10 for x in b)


@lru_cache(maxsize=4096)  # many stations report the same minutes: most times are a cache hit
def bcd_time(b: bytes) -> datetime:
    """yyMMddHHmm[ss] BCD → naive local datetime (years 2000-2099)."""
    digits = b.hex()
    if not digits.isdigit():
        raise FrameError("bad_time", f"time {digits.upper()} is not BCD")
    try:
        return datetime(2000 + int(digits[0:2]), int(digits[2:4]), int(digits[4:6]), int(digits[6:8]),
                        int(digits[8:10]), int(digits[10:12]) if len(digits) > 10 else 0)
    except ValueError as exc:
        raise FrameError("bad_time", f"time {digits} is not a date: {exc}") from None


_SCALE = tuple(10.0 ** d for d in range(8))


def bcd_value(b: bytes, decimals: int) -> float | None:
    """A BCD element value; a leading FF byte makes it negative; all FF (or AA) means no data. Raises on non-BCD."""
    n = len(b)
    if not n:
        return None
    first = b[0]
    if first == 0xFF:
        if b.count(0xFF) == n:
            return None
        digits = b[1:].hex()
        if not digits.isdigit():
            raise ValueError(digits.upper())
        return -int(digits) / _SCALE[decimals]
    if first == 0xAA and b.count(0xAA) == n:
        return None
    digits = b.hex()
    if not digits.isdigit():
        raise ValueError(digits.upper())
    return int(digits) / _SCALE[decimals]


def encode_bcd(value: float, nbytes: int, decimals: int) -> bytes:
    n = round(abs(value) * 10 ** decimals)
    if value < 0:
        return b"\xff" + bytes.fromhex(f"{n:0{2 * (nbytes - 1)}d}")
    text = f"{n:0{2 * nbytes}d}"
    if len(text) > 2 * nbytes:
        raise ValueError(f"{value} does not fit {nbytes} BCD bytes with {decimals} decimals")
    return bytes.fromhex(text)


def encode_time(ts: datetime, seconds: bool) -> bytes:
    return bytes.fromhex(ts.strftime("%y%m%d%H%M%S" if seconds else "%y%m%d%H%M"))


# -- decoding ----------------------------------------------------------------------------------------------------
def decode(frame: bytes) -> Message:
    """A CRC-checked frame → Message. Unreadable elements are listed in ``bad_elements``, never fatal."""
    if frame[11] >> 4 != 0:
        raise FrameError("not_upstream", f"up/down flag {frame[11] >> 4:X}: a centre's frame, not a station's")
    addr_b = frame[3:8]
    if not _is_bcd(addr_b):
        raise FrameError("bad_address", f"remote station address {addr_b.hex().upper()} is not BCD")
    func = frame[10]
    length = ((frame[11] & 0x0F) << 8) | frame[12]
    pos = HEADER
    part = None
    if frame[13] == SYN:
        p = frame[14:17]
        part = ((p[0] << 4) | (p[1] >> 4), ((p[1] & 0x0F) << 8) | p[2])
        pos += 3
        if not 1 <= part[1] <= part[0]:
            raise FrameError("bad_frame", f"packet {part[1]} of {part[0]}")
    body = frame[pos:HEADER + length]
    msg = Message(protocol=NAME, device=addr_b.hex(), password=frame[8:10].hex().upper(), function=f"{func:02X}",
                  raw=frame, part=part, end=frame[-3], carries_data=func in DATA_FUNCTIONS)
    if part is not None and part[1] > 1:
        return msg  # a continuation: decoded once merged with the packets before it
    _decode_body(msg, body, func)
    return msg


def _decode_body(msg: Message, body: bytes, func: int) -> None:
    if len(body) < 8:
        raise FrameError("bad_frame", f"body of {len(body)} bytes has no serial number and send time")
    msg.serial = (body[0] << 8) | body[1]
    msg.sent_local = bcd_time(body[2:8])
    if func in DATA_FUNCTIONS:
        _elements(msg, body, 8)


def _elements(msg: Message, body: bytes, pos: int) -> None:
    obs_time: datetime | None = None
    step: timedelta | None = None
    n = len(body)
    out = msg.observations
    while pos < n:
        ident = body[pos]
        if ident == 0xF1 and pos + 1 < n and body[pos + 1] == 0xF1:
            if pos + 8 > n:
                msg.bad_elements.append("F1: truncated")
                return
            if body[pos + 2:pos + 7].hex() != msg.device:
                msg.bad_elements.append(f"F1: station {body[pos + 2:pos + 7].hex()} differs from the header")
            msg.station_type = STATION_TYPES.get(body[pos + 7], f"{body[pos + 7]:02X}")
            pos += 8
            continue
        if ident == 0xF0 and pos + 1 < n and body[pos + 1] == 0xF0:
            try:
                obs_time = bcd_time(body[pos + 2:pos + 7])
            except FrameError as exc:
                msg.bad_elements.append(f"F0: {exc.detail}")
                obs_time = None
            pos += 7
            step = None
            continue
        if ident in (0xF2, 0xF3):  # manual data (ASCII) and picture: the rest of the body, no numeric values
            msg.bad_elements.append(f"{ident:02X}: not a numeric element")
            return
        code = f"{ident:02X}"
        if ident == 0xFF:  # user-defined elements: FF + a second identifier byte
            if pos + 1 >= n:
                msg.bad_elements.append("FF: truncated")
                return
            pos += 1
            code = f"FF{body[pos]:02X}"
        if pos + 1 >= n:
            msg.bad_elements.append(f"{code}: no definition byte")
            return
        d = body[pos + 1]
        size, dec = d >> 3, d & 0x07
        value_b = body[pos + 2:pos + 2 + size]
        pos += 2 + size
        if len(value_b) < size or size == 0:
            msg.bad_elements.append(f"{code}: {size} bytes announced, {len(value_b)} present")
            return
        if ident == 0x04:  # time step DDHHMM of a uniform-interval batch
            try:
                dd, hh, mm = (int(value_b[i:i + 1].hex()) for i in range(3))
                step = timedelta(days=dd, hours=hh, minutes=mm)
            except ValueError:
                msg.bad_elements.append(f"04: time step {value_b.hex()} is not BCD")
            if step is not None and step <= timedelta(0):
                step = None
            # The rest of the body is one element repeated at that step.
            if step is not None and pos + 1 < n:
                _series(msg, body, pos, obs_time, step)
                return
            continue
        if obs_time is None:
            msg.bad_elements.append(f"{code}: no observation time (F0 F0) before it")
            continue
        if 0xF4 <= ident <= 0xFC:
            _five_minute_series(msg, code, value_b, obs_time, 1 if ident == 0xF4 else 2)
            continue
        try:
            v = bcd_value(value_b, dec)
        except ValueError as exc:
            msg.bad_elements.append(f"{code}: value {exc} is not BCD")
            continue
        if v is not None:
            out.append(Observation(code, obs_time, v))


def _series(msg: Message, body: bytes, pos: int, start: datetime | None, step: timedelta) -> None:
    ident, d = body[pos], body[pos + 1]
    code, size, dec = f"{ident:02X}", d >> 3, d & 0x07
    pos += 2
    if start is None or size == 0:
        msg.bad_elements.append(f"{code}: uniform-interval batch without time or size")
        return
    i = 0
    while pos + size <= len(body):
        try:
            v = bcd_value(body[pos:pos + size], dec)
        except ValueError as exc:
            msg.bad_elements.append(f"{code}[{i}]: value {exc} is not BCD")
            v = None
        if v is not None:
            msg.observations.append(Observation(code, start + i * step, v))
        pos += size
        i += 1
    if pos != len(body):
        msg.bad_elements.append(f"{code}: {len(body) - pos} bytes left after the batch")


def _five_minute_series(msg: Message, code: str, b: bytes, first: datetime, width: int) -> None:
    scale = 0.1 if width == 1 else 0.01
    missing = 0xFF if width == 1 else 0xFFFF
    for i in range(len(b) // width):
        raw = int.from_bytes(b[i * width:(i + 1) * width], "big")
        if raw != missing:
            msg.observations.append(Observation(code, first + i * FIVE_MIN, round(raw * scale, 2)))


def merge(parts: list[Message]) -> Message:
    """The packets of an M3 multi-packet message (numbers 1..total) → one message decoded from the joined body."""
    parts = sorted(parts, key=lambda m: m.part[1] if m.part else 0)
    first = parts[0]
    body = b"".join(_body_of(m) for m in parts)
    msg = Message(protocol=NAME, device=first.device, password=first.password, function=first.function,
                  raw=b"".join(m.raw for m in parts), part=None, end=parts[-1].end,
                  carries_data=first.carries_data)
    _decode_body(msg, body, int(first.function, 16))
    return msg


def _body_of(m: Message) -> bytes:
    frame = m.raw
    length = ((frame[11] & 0x0F) << 8) | frame[12]
    pos = HEADER + (3 if frame[13] == SYN else 0)
    return frame[pos:HEADER + length]


# -- encoding ----------------------------------------------------------------------------------------------------
def _frame(head: bytes, flag_len: int, start: int, packet: bytes, body: bytes, end: int) -> bytes:
    f = head + bytes([flag_len >> 8, flag_len & 0xFF, start]) + packet + body + bytes([end])
    c = crc16_modbus(f)
    return f + bytes([c >> 8, c & 0xFF])


def build_down(centre: int, addr: bytes, password: bytes, func: int, serial: int, now_local: datetime | None,
               end: int) -> bytes:
    """A centre → station frame: address first, centre second, down flag 8, body = serial + centre time."""
    body = bytes([serial >> 8 & 0xFF, serial & 0xFF]) + (encode_time(now_local, True) if now_local else b"\x00" * 6)
    return _frame(SOH + addr + bytes([centre]) + password + bytes([func]), 0x8000 | len(body), STX, b"", body, end)


def confirm(msg: Message, now_local: datetime, final: bool = True) -> bytes | None:
    """The centre's answer: ACK ("continue") for a packet of a multi-packet message, EOT once all is received.
    Keep-alives get no answer."""
    if msg.function == "2F":
        return None
    raw = msg.raw
    end = EOT if final else ACK
    serial = msg.serial if msg.serial is not None else 0
    return build_down(raw[2], raw[3:8], raw[8:10], int(msg.function, 16), serial, now_local, end)


def encode(address: str, func: int, serial: int, sent_local: datetime, *, centre: int = 1, password: str = "0000",
           station_type: int = 0x50, groups: list[tuple[datetime, list[tuple[int, float, int, int]]]] = (),
           end: int = ETX) -> bytes:
    """A station → centre report (simulated devices, tests). ``groups``: (observation time, [(identifier, value,
    byte count, decimals)]); a report with groups names its station (F1 F1) first."""
    addr = bytes.fromhex(address)
    body = bytearray(bytes([serial >> 8 & 0xFF, serial & 0xFF]) + encode_time(sent_local, True))
    if groups:
        body += b"\xf1\xf1" + addr + bytes([station_type])
    for obs_time, elements in groups:
        body += b"\xf0\xf0" + encode_time(obs_time, False)
        for ident, value, nbytes, dec in elements:
            body += bytes([ident, (nbytes << 3) | dec]) + encode_bcd(value, nbytes, dec)
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes: split it (M3) or send fewer elements")
    head = SOH + bytes([centre]) + addr + bytes.fromhex(password) + bytes([func])
    return _frame(head, len(body), STX, b"", bytes(body), end)


def split_m3(frame: bytes, packet_body: int) -> list[bytes]:
    """One single-packet report → the packets of an M3 multi-packet message carrying the same body."""
    length = ((frame[11] & 0x0F) << 8) | frame[12]
    body = frame[HEADER:HEADER + length]
    chunks = [body[i:i + packet_body] for i in range(0, len(body), packet_body)]
    total = len(chunks)
    out = []
    for no, chunk in enumerate(chunks, 1):
        packet = bytes([total >> 4, ((total & 0x0F) << 4) | (no >> 8), no & 0xFF])
        out.append(_frame(frame[:11], len(chunk) + 3, SYN, packet, chunk, ETX if no == total else ETB))
    return out


class Sl651Codec:
    name = NAME

    def framer(self, max_frame_bytes: int) -> Sl651Framer:
        return Sl651Framer(max_frame_bytes)

    decode = staticmethod(decode)
    confirm = staticmethod(confirm)
    merge = staticmethod(merge)


CODEC = Sl651Codec()
