"""The app's router tries only the routes that can match a path (panen.app.Routes); it
must choose exactly the route Starlette's full search chooses."""

from __future__ import annotations

import re

from starlette.routing import BaseRoute, Match, Mount, WebSocketRoute

from core.settings import Settings
from panen.app import Routes, create_app

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ODD_PATHS = (
    "/",
    "",
    "/api",
    "/api/",
    "/api/orders/",
    "/api/nope",
    "/nope",
    "/nope/deeper/still",
    "/static/app.js",
    "/static",
    "/ws",
    "/ws/",
    "/sessions/x1/more",
    "//api/orders",
)


def first_full(routes: list[BaseRoute], scope: dict[str, object]) -> BaseRoute | None:
    return next((r for r in routes if r.matches(scope)[0] is Match.FULL), None)


def concrete(route: BaseRoute) -> str:
    """A path the route's pattern matches: every parameter filled in."""
    path = str(getattr(route, "path", ""))
    return re.sub(r"\{[^}]+\}", "x1", path) + ("/x.css" if isinstance(route, Mount) else "")


def test_the_router_chooses_the_route_starlettes_full_search_does_for_every_path(
    settings: Settings,
) -> None:
    router = create_app(settings).router
    assert isinstance(router, Routes)
    paths = {concrete(r) for r in router.routes} | set(ODD_PATHS)
    found: set[int] = set()
    for path in sorted(paths):
        for kind, method in [("http", m) for m in METHODS] + [("websocket", "GET")]:
            scope = {"type": kind, "path": path, "root_path": "", "method": method}
            expected = first_full(router.routes, scope)
            assert first_full(router.candidates(path), scope) is expected, (kind, method, path)
            if expected is not None:
                found.add(id(expected))
    # Every route was chosen for some path, and the hot one is not among a hundred tries.
    assert found == {id(r) for r in router.routes}
    assert len(router.candidates("/api/orders")) < 15 < len(router.routes)
    assert any(isinstance(r, WebSocketRoute) for r in router.candidates("/ws"))
