"""What every field protocol module provides, and the protocol-neutral message it decodes to.

A protocol module (sl651.py, hj212.py; a third such as SZY 206 is one more) supplies a ``Codec``:
a ``Framer`` that cuts a TCP byte stream into candidate frames (resynchronising on garbage), ``decode``
of one frame into a ``Message``, and the frames the centre sends back (confirmation, negative answer).
Everything after that — device lookup, mapping to metrics, publishing, confirmation after the broker's
acknowledgement — lives in the server and knows no protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class FrameError(ValueError):
    """A frame that cannot be decoded; ``reason`` is a short stable code for the dead letter."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Observation:
    """One value of one protocol element/code at one local (Beijing, zone-less) time."""

    code: str
    local_time: datetime
    value: float
    flag: str = "N"  # HJ 212 data flag; SL 651 values are always "N"


@dataclass(slots=True)
class Message:
    protocol: str
    device: str                 # SL 651 remote station address (10 hex digits) or HJ 212 MN
    password: str | None
    function: str               # SL 651 function code ("32") or HJ 212 CN ("2011")
    raw: bytes
    sent_local: datetime | None = None   # the device's own clock when it sent the frame
    observations: list[Observation] = field(default_factory=list)
    station_type: str | None = None      # SL 651 station type letter (P, H, K, Q, G, I...)
    serial: int | None = None            # SL 651 serial number, echoed in the confirmation
    qn: str | None = None                # HJ 212 request number, echoed in the answer
    wants_answer: bool = True
    part: tuple[int, int] | None = None  # (total, number) of a multi-packet message
    bad_elements: list[str] = field(default_factory=list)  # elements that could not be read
    carries_data: bool = True            # False for keep-alives and answers
    end: int | None = None               # SL 651 end character (ETX, ETB...)
    cp: str | None = None                # HJ 212 CP content, kept to merge the packets of a split message


@dataclass(slots=True)
class Junk:
    """Bytes the framer skipped or a frame it refused, with why (a dead letter when reported)."""

    data: bytes
    reason: str
    detail: str
    nak: bytes | None = None  # what to answer, where the protocol has a negative acknowledgement


class Framer(Protocol):
    def feed(self, data: bytes) -> list[bytes | Junk]:
        """Append ``data``; return complete frames (CRC checked) and refused bytes, in stream order."""
        ...

    @property
    def buffered(self) -> int: ...


class Codec(Protocol):
    name: str

    def framer(self, max_frame_bytes: int) -> Framer: ...

    def decode(self, frame: bytes) -> Message: ...

    def confirm(self, msg: Message, now_local: datetime, final: bool = True) -> bytes | None:
        """The centre's confirmation of ``msg`` (None when the protocol expects none)."""
        ...

    def merge(self, parts: list[Message]) -> Message:
        """One message from the packets of a multi-packet message, ordered by number."""
        ...
