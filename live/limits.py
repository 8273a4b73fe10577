"""Limits that protect a room from any one client, and a small token bucket to enforce them."""

from __future__ import annotations

import time

MAX_FRAME_BYTES = 4096  # a client frame over this closes the socket with 1009
MAX_TOPIC_CHARS = 80
MAX_TOPICS_PER_SOCKET = 16
MAX_CONNECTIONS_PER_USER = 8
CHAT_MAX_CHARS = 280
CHAT_LINES_PER_WINDOW = 5  # per user and room, across every process
CHAT_WINDOW_S = 10
CHAT_RECENT = 50  # lines a joining viewer sees in the snapshot
LIKES_PER_FRAME = 50
LIKES_PER_SECOND = 100  # per socket; a like over this is refused, not counted
FRAMES_PER_SECOND = 30  # per socket, with a burst of twice that; beyond it is a flood: 1008
SEND_QUEUE_FRAMES = 64  # frames waiting for a socket (seconds of lag); beyond it: too slow
HISTORY_FRAMES = 1000  # frames per topic kept in Redis for `since`
EVENTS_PER_FRAME = 500  # a busier tick carries the rest in the next frame


class Bucket:
    """A token bucket: `rate` tokens a second, holding at most `burst`."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, n: float = 1.0) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False
