"""Opaque, time-ordered ids: a short type prefix and 128 bits (48 of time, 80 random)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case

# The random part comes from the OS's CSPRNG, read 4 KiB at a time: a stampede makes
# thousands of ids a second, and a syscall for each was a measurable share of placing an
# order. The lock keeps two threads from ever taking the same bytes.
_CHUNK = 4096
_pool = b""
_at = 0
_lock = threading.Lock()


def _random80() -> int:
    global _pool, _at
    with _lock:
        if _at + 10 > len(_pool):
            _pool, _at = os.urandom(_CHUNK), 0
        start = _at
        _at += 10
        return int.from_bytes(_pool[start : start + 10], "big")


def _forget_pool() -> None:
    global _pool, _at
    _pool, _at = b"", 0


# A forked child must not hand out the bytes its parent also holds.
os.register_at_fork(after_in_child=_forget_pool)


def _b32(n: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_ALPHABET[n & 31])
        n >>= 5
    return "".join(reversed(out))


def new_id(prefix: str, *, at_ms: int | None = None) -> str:
    """`usr_01jd…`: sortable by creation time, unguessable, safe in URLs and Redis keys.
    `at_ms` (epoch ms) stamps another time than now: for tests of what ages."""
    ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    return f"{prefix}_{_b32(ms << 80 | _random80(), 26)}"


_VALUE = {c: n for n, c in enumerate(_ALPHABET)}


def made_ms(id_: str) -> int | None:
    """When an id was made (epoch ms, on the clock of the process that made it); None for
    a string that is not one of our ids."""
    _, _, body = id_.rpartition("_")
    if len(body) != 26:
        return None
    value = 0
    for c in body:
        digit = _VALUE.get(c)
        if digit is None:
            return None
        value = value << 5 | digit
    return value >> 80
