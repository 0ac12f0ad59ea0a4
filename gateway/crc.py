"""The two CRC16 variants of the field protocols (docs/gateway.md, "HJ 212": the two variants side by side).

Both use the reflected polynomial 0xA001 and start at 0xFFFF; they differ in how a byte enters the register:
SL 651-2014 uses CRC16/MODBUS (``crc ^= byte``), HJ 212-2017 its own variant (``crc = (crc >> 8) ^ byte``,
the high byte of the register dropped first). Table-driven: a ~100-byte frame costs microseconds.
"""

from __future__ import annotations


def _table() -> tuple[int, ...]:
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        out.append(c)
    return tuple(out)


_T = _table()


def crc16_modbus(data: bytes | bytearray | memoryview) -> int:
    """CRC16/MODBUS; SL 651 sends it high byte first."""
    crc = 0xFFFF
    t = _T
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return crc


def crc16_hj212(data: bytes | bytearray | memoryview) -> int:
    """HJ 212-2017's CRC16 of the data segment, sent as four hex digits."""
    crc = 0xFFFF
    t = _T
    for b in data:
        crc = t[(crc >> 8) ^ b]
    return crc
