"""Dead letters of bounded size: what is kept of a message that could not be used, and for how long.

An oversized or broken message is evidence, not data: its first ``keep_bytes`` bytes (enough to see what sent it),
its full size and its SHA-256 (to match it with the sender's copy) are kept, never the whole of it, so a sender of
20 MB messages cannot fill the registry. Old dead letters are pruned by count and by age
(``dead_letter_max_count``, ``dead_letter_max_age_days``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from core.domain import DeadLetter

DEFAULT_KEEP_BYTES = 4096


def dead_letter(topic: str, payload: bytes | bytearray | memoryview, reason: str, detail: str,
                received_at: datetime, keep_bytes: int = DEFAULT_KEEP_BYTES) -> DeadLetter:
    """A dead letter holding at most ``keep_bytes`` of ``payload``, with the payload's full size and hash."""
    view = memoryview(payload)
    return DeadLetter(topic=topic[:1024], payload=bytes(view[:keep_bytes]), reason=reason, detail=detail[:1000],
                      received_at=received_at, payload_size=len(view),
                      payload_sha256=hashlib.sha256(view).hexdigest())


def bounded(letter: DeadLetter, keep_bytes: int = DEFAULT_KEEP_BYTES) -> DeadLetter:
    """The letter as ``dead_letter`` would have made it (for letters built elsewhere); unchanged when bounded."""
    if letter.payload_size is not None and len(letter.payload) <= keep_bytes:
        return letter
    return dead_letter(letter.topic, letter.payload, letter.reason, letter.detail, letter.received_at, keep_bytes)
