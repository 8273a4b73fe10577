"""The Starlette application: every package's routes, error rendering, static pages."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette._utils import get_route_path  # the path Starlette's routes match on
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from commerce.catalog import endpoints as catalog
from commerce.charities import endpoints as charities
from commerce.deals import endpoints as deals
from commerce.orders import endpoints as orders
from commerce.payouts import endpoints as payouts
from commerce.sessions import endpoints as sessions
from commerce.shipping import endpoints as shipping
from core import accounts, health, heap
from core.db import is_transient
from core.errors import ApiError
from core.headers import CSP, DOCS_CSP, SecurityHeaders
from core.health import MetricsMiddleware
from core.http import error_response, json
from core.logging import configure_logging
from core.openapi import document
from core.services import Services
from core.settings import Settings, get_settings
from donations.charity import endpoints as charity
from donations.energy import endpoints as energy
from donations.gifts import endpoints as gifts
from donations.sponsors import endpoints as sponsors
from donations.transparency import endpoints as transparency
from live import gateway, sessions_api
from live.hub import Hub
from live.watch import Watch
from panen.flows import endpoints as flows

log = logging.getLogger("panen.app")


def _static_dir() -> Path:
    """static/ of a checkout (editable installs, `make demo`), else the copy a plain
    `pip install .` puts under the environment's share/panen/."""
    checkout = Path(__file__).resolve().parent.parent / "static"
    return checkout if checkout.is_dir() else Path(sys.prefix) / "share" / "panen" / "static"


STATIC_DIR = _static_dir()

API_MODULES = (
    health,
    accounts,
    catalog,
    charities,
    sessions,
    transparency,
    gifts,
    sponsors,
    charity,
    energy,
    orders,
    payouts,
    shipping,
    flows,
    deals,
    sessions_api,
)

# Page paths of the contract (docs/api.md) and the file in static/ that serves each.
PAGES = {
    "/": "index.html",
    "/login": "login.html",
    "/sessions/{session_id}": "session.html",
    "/host": "shows.html",
    "/host/sessions/{session_id}": "host.html",
    "/farmer": "farmer.html",
    "/farmer/packing": "packing.html",
    "/me/orders": "orders.html",
    "/overlay/sessions/{session_id}": "overlay.html",
    "/charities/{charity_id}": "charity.html",
    "/campaigns/{campaign_id}": "campaign.html",
    "/verify": "verify.html",
}


def api_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for module in API_MODULES:
        routes.extend(module.api.routes)
    return routes


def openapi(routes: list[BaseRoute]) -> Callable[[Request], Awaitable[Response]]:
    """GET /openapi.json: the HTTP contract, made once from the declared routes."""
    spec = document(routes, title="Panen", version=metadata.version("panen"))

    async def serve(request: Request) -> Response:
        return json(spec, headers={"Cache-Control": "no-cache"})

    return serve


def page(filename: str, csp: str = CSP) -> Callable[[Request], Awaitable[Response]]:
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": csp}

    async def serve(request: Request) -> Response:
        return FileResponse(STATIC_DIR / filename, headers=headers)

    return serve


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    return error_response(ApiError(exc.status_code, code, str(exc.detail)))


async def on_unavailable(request: Request, exc: Exception) -> Response:
    """Redis is away or restarting (or a server refused a connection). Every request that
    needs Redis needs it before it commits anything (what follows a commit tolerates its
    absence), so nothing changed."""
    log.warning("unavailable: %s", exc, extra={"path": request.url.path})
    return error_response(
        ApiError(
            503,
            "unavailable",
            "a service this needs is restarting; retry",
            {},
            {"Retry-After": "1"},
        )
    )


async def on_database_error(request: Request, exc: Exception) -> Response:
    """A deadlock the retries did not clear, no pooled connection in time, PostgreSQL away
    or restarting: the client may try again. Any other database error is a bug."""
    if not is_transient(exc):
        raise exc
    log.warning("busy: %s", type(exc).__name__, extra={"path": request.url.path})
    return error_response(
        ApiError(503, "busy", "too busy right now; retry", headers={"Retry-After": "1"})
    )


async def on_crash(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    return error_response(ApiError(500, "internal", "something went wrong on our side"))


def _leading(route: BaseRoute) -> tuple[str, ...]:
    """The literal path segments a route's path starts with, at most two: `/api/orders/{id}`
    starts with ("api", "orders"), `/{anything}` with ()."""
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return ()
    literal: list[str] = []
    for segment in path.split("/")[1:3]:
        if "{" in segment:
            break
        literal.append(segment)
    return tuple(literal)


class Routes(Router):
    """Starlette's router, trying only the routes that can match a path.

    Starlette tries each route's pattern in turn, well over a hundred here: a twentieth of
    a web process's CPU in a flash sale went to `POST /api/orders` failing to match the
    routes listed before it. A route can match only paths that start with its leading
    literal segments, so each path's first two segments pick, in the routes' order, the
    ones worth trying: the first to match in full is the one Starlette would have chosen.
    The index is built on the first request and again if the number of routes changes;
    the app never changes its routes once it serves."""

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that could match `path` (as the patterns see it), in their order."""
        if getattr(self, "_indexed", -1) != len(self.routes):
            self._index()
        segments = tuple(path.split("/", 3)[1:3])
        found = self._by_prefix.get(segments) or self._by_prefix.get(segments[:1])
        return self._anywhere if found is None else found

    def _index(self) -> None:
        self._indexed = len(self.routes)
        leads = [_leading(r) for r in self.routes]
        prefixes = {p for p in leads if len(p) == 2} | {p[:1] for p in leads if p}

        def could(prefix: tuple[str, ...]) -> list[BaseRoute]:
            return [r for r, p in zip(self.routes, leads, strict=True) if prefix[: len(p)] == p]

        self._by_prefix = {prefix: could(prefix) for prefix in prefixes}
        self._anywhere = could(())

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            scope.setdefault("router", self)
            for route in self.candidates(get_route_path(scope)):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope["route"] = route
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        # The lifespan, or no route matched in full: Starlette's own search answers 405
        # for a route that matched all but the method, redirects a trailing slash, or 404.
        await super().app(scope, receive, send)


class Panen(Starlette):
    """The app, with its sockets taken before the middleware stack (live.gateway.serve),
    and a router that tries only the routes that can match."""

    def __init__(self, *, routes: list[BaseRoute], lifespan: Any, **kwargs: Any) -> None:
        super().__init__(routes=routes, lifespan=lifespan, **kwargs)
        self.router = Routes(routes, lifespan=lifespan)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and get_route_path(scope) == gateway.PATH:
            scope["app"] = self
            await gateway.serve(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> Starlette:
    conf = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        configure_logging(conf.log_format, conf.log_level)
        services = await Services.start(conf)
        app.state.services = services
        hub = Hub(services)
        await hub.start()
        app.state.live = gateway.Gateway(services, hub)
        watch = app.state.watch = Watch(services, hub.owner, hub.connections)
        app.state.live.on_like = watch.note_like
        watch.start()
        lag = asyncio.create_task(health.watch_loop_lag())
        heap.settle()
        try:
            # The lifespan's state reaches the server's own socket protocol (live.wire).
            yield {"live": app.state.live}
        finally:
            lag.cancel()
            await watch.stop()
            await hub.stop()
            await services.close()

    routes: list[BaseRoute] = [*api_routes(), *gateway.routes]
    routes.append(Route("/openapi.json", openapi(routes), name="openapi"))
    routes.append(Route("/docs", page("docs.html", DOCS_CSP), name="page:docs.html"))
    routes += [Route(path, page(name), name=f"page:{name}") for path, name in PAGES.items()]
    routes.append(Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"))
    return Panen(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(SecurityHeaders), Middleware(MetricsMiddleware)],
        # Handlers by class answer without re-raising; only `Exception` (a 500, a bug)
        # is logged as a crash and closes the connection.
        exception_handlers={
            ApiError: on_api_error,
            HTTPException: on_http_error,
            RedisError: on_unavailable,
            RedisClusterException: on_unavailable,
            # A server we depend on refused or dropped us (PostgreSQL's socket gone while it
            # restarts, a reset connection): what could not reach it committed nothing.
            OSError: on_unavailable,
            DBAPIError: on_database_error,
            PoolTimeout: on_database_error,
            Exception: on_crash,
        },
    )
