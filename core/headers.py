"""Security headers on every response: what the pages may load, that nobody may frame
them, that browsers trust our content types, and what a link tells the next site."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The pages load scripts, styles and fonts only from here, with no inline script or
# style; a stream (video, HLS, an embed) may come from any https origin the host names.
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https:",
        "media-src 'self' https: blob:",
        "connect-src 'self' https:",
        "worker-src 'self' blob:",
        "frame-src https:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# The API reference page (/docs) renders with RapiDoc, whose components carry their
# styles inline; it loads no data but our own /openapi.json.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeaders:
    """Adds HEADERS to every HTTP response (a handler's own header of the same name wins)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # On every response: raw (lower-case) header pairs, not MutableHeaders.
                raw = list(message.get("headers", ()))
                present = {name.lower() for name, _ in raw}
                message["headers"] = raw + [h for h in HEADERS if h[0] not in present]
            await send(message)

        await self.app(scope, receive, with_headers)
