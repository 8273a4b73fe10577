"""One error type for everything a client can get wrong; it renders as the contract's error
object (docs/api.md)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A client-facing error: HTTP status, a stable machine `code`, and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


def bad_request(code: str, message: str, field: str | None = None, **details: Any) -> ApiError:
    if field is not None:
        details["field"] = field
    return ApiError(400, code, message, details)


def unauthorized(message: str = "log in first") -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str = "you may not do that") -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {kind} with id {ident!r}", {"kind": kind, "id": ident})


def conflict(code: str, message: str, **details: Any) -> ApiError:
    return ApiError(409, code, message, details)
