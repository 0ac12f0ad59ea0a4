"""Is a configured secret a real one? Placeholders and guessable keys are refused before the service starts.

A signing key that anyone can read in the repository (``.env.example``) or guess (``xxxx…``) lets anyone sign an
admin token, so the settings refuse them with a message naming the variable and how to make a good one.
"""

from __future__ import annotations

import math
import re
from collections import Counter

MAKE_ONE = "make one with `openssl rand -hex 32` or `python3 -c 'import secrets; print(secrets.token_hex(32))'`"

# Words that mark a value copied from an example, not chosen (compared without case, '-', '_' or spaces).
_PLACEHOLDER_WORDS = ("changeme", "replaceme", "placeholder", "example", "yoursecret", "yourpassword",
                      "yourtoken", "secretkey", "notasecret", "randomcharacters")
# The Shannon entropy of the key's own characters times its length: hex from `openssl rand -hex 32` has ~240 bits,
# `secrets.token_urlsafe(32)` ~200; an English phrase or a repeated letter far less.
MIN_KEY_BITS = 128.0
MIN_KEY_DISTINCT = 10


def placeholder_word(value: str) -> str | None:
    """The placeholder word the value contains (``change-me`` …), None when it has none."""
    folded = re.sub(r"[\s_\-.]", "", value.lower())
    for word in _PLACEHOLDER_WORDS:
        if word in folded:
            return word
    return None


def estimated_bits(value: str) -> float:
    """A rough upper bound of the key's entropy: per-character Shannon entropy of the value times its length."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    per_char = -sum(c / n * math.log2(c / n) for c in counts.values())
    return per_char * n


def key_problem(name: str, value: str, min_len: int = 32) -> str | None:
    """Why ``value`` is no usable signing key for setting ``name`` (a sentence), None when it is fine."""
    value = value.strip()
    word = placeholder_word(value)
    if word is not None:
        return f"{name} is a placeholder (it contains {word!r}), not a secret: {MAKE_ONE}"
    if len(value) < min_len:
        return f"{name} must have at least {min_len} characters: {MAKE_ONE}"
    if len(set(value)) < MIN_KEY_DISTINCT or estimated_bits(value) < MIN_KEY_BITS:
        return f"{name} is too easy to guess (too few different characters): {MAKE_ONE}"
    return None


def password_problem(name: str, value: str) -> str | None:
    """Why ``value`` is no usable password or token for ``name``: only placeholders are refused here (the
    servers that check them have their own rules)."""
    word = placeholder_word(value)
    if word is not None:
        return f"{name} is a placeholder (it contains {word!r}), not a secret: set the real one (a new one: {MAKE_ONE})"
    return None
