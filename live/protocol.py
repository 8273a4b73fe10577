"""Client frames of `/ws`: parsing, validation and the server's reply frames.

A bad frame becomes a `FrameError` with a stable `code` and the offending `field`; the
gateway answers it with an error frame and keeps the socket open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from core.errors import ApiError
from core.fields import control_character_at
from live import limits

CLIENT_TYPES = frozenset(
    {"hello", "subscribe", "unsubscribe", "chat", "like", "order", "donate", "moderate", "ping"}
)


class FrameError(Exception):
    """A client frame that cannot be served; the socket stays open."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        frame_id: Any = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.frame_id = frame_id
        self.details = details or {}

    @classmethod
    def of(cls, err: ApiError) -> FrameError:
        """The error an HTTP request would get, as a frame: the same code, field and
        details (what is left in stock, a buyer's limit …)."""
        return cls(err.code, err.message, err.details.get("field"), None, err.details)

    def frame(self) -> bytes:
        if not self.details:
            return error_frame(self.code, self.message, self.field, self.frame_id)
        return error_frame(self.code, self.message, self.field, self.frame_id, details=self.details)


def error_frame(
    code: str, message: str, field: str | None = None, frame_id: Any = None, **extra: Any
) -> bytes:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if frame_id is not None:
        out["id"] = frame_id
    if field is not None:
        out["field"] = field
    out.update(extra)
    return orjson.dumps(out)


@dataclass(frozen=True, slots=True)
class Frame:
    type: str
    id: Any
    data: dict[str, Any]

    def opt_str(self, name: str, max_len: int = 200) -> str | None:
        """An optional string field: None when absent, else checked like `str_field`."""
        return None if self.data.get(name) is None else self.str_field(name, max_len)

    def str_field(self, name: str, max_len: int = 200) -> str:
        value = self.data.get(name)
        if value is None:
            raise FrameError("missing_field", f"{name} is required", name, self.id)
        if not isinstance(value, str) or not value:
            raise FrameError("invalid_field", f"{name} must be a non-empty string", name, self.id)
        if len(value) > max_len:
            raise FrameError(
                "invalid_field", f"{name} is longer than {max_len} characters", name, self.id
            )
        return value

    def opt_int(self, name: str, lo: int, hi: int) -> int | None:
        """An optional integer field: None when absent, else checked like `int_field`."""
        return None if self.data.get(name) is None else self.int_field(name, lo, hi)

    def int_field(self, name: str, lo: int, hi: int, default: int | None = None) -> int:
        value = self.data.get(name, default)
        if value is None:
            raise FrameError("missing_field", f"{name} is required", name, self.id)
        # bool is an int in Python; a JSON `true` is not a count.
        if not isinstance(value, int) or isinstance(value, bool):
            raise FrameError("invalid_field", f"{name} must be an integer", name, self.id)
        if not lo <= value <= hi:
            raise FrameError(
                "invalid_field", f"{name} must be between {lo} and {hi}", name, self.id
            )
        return value

    def topic(self) -> str:
        return self.str_field("topic", limits.MAX_TOPIC_CHARS)


def parse(text: str | bytes) -> Frame:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError("malformed_json", "the frame is not valid JSON", "frame") from None
    if not isinstance(data, dict):
        raise FrameError("invalid_frame", "a frame is a JSON object", "frame")
    frame_id = data.get("id")
    if frame_id is not None and not (
        isinstance(frame_id, str | int) and not isinstance(frame_id, bool)
    ):
        raise FrameError("invalid_field", "id must be a string or an integer", "id")
    if isinstance(frame_id, str) and len(frame_id) > 64:
        raise FrameError("invalid_field", "id is longer than 64 characters", "id")
    where = control_character_at(data)
    if where is not None:
        raise FrameError(
            "invalid_field", f"{where}: control characters are not allowed", where, frame_id
        )
    kind = data.get("type")
    if not isinstance(kind, str):
        raise FrameError("missing_field", "a frame needs a type", "type", frame_id)
    if kind not in CLIENT_TYPES:
        raise FrameError("unknown_type", f"unknown frame type {kind[:40]!r}", "type", frame_id)
    return Frame(kind, frame_id, data)


PONG = orjson.dumps({"type": "pong"})
