"""Every answer the tests get checked against the shape its route declares (`Spec.response`):
the same TypedDicts `/openapi.json` publishes, closed to keys they do not name. Wired into
the in-process client of tests/conftest.py, so the whole suite checks the document."""

from __future__ import annotations

from functools import cache
from typing import Any

import httpx
from pydantic import TypeAdapter
from starlette.routing import Route

from core.http import Spec
from panen.app import api_routes


@cache
def _routes() -> list[tuple[Route, Spec]]:
    out = []
    for route in api_routes():
        spec = getattr(getattr(route, "endpoint", None), "panen_spec", None)
        if isinstance(route, Route) and isinstance(spec, Spec):
            out.append((route, spec))
    return out


@cache
def _adapter(shape: Any) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


def shape_of(method: str, path: str) -> Any:
    for route, spec in _routes():
        if method in (route.methods or ()) and route.path_regex.match(path):
            return spec.response
    return None


async def check_shape(response: httpx.Response) -> None:
    """An httpx response hook: a success must be what its route declares."""
    if not 200 <= response.status_code < 300:
        return
    shape = shape_of(response.request.method, response.request.url.path)
    if shape is None:
        return
    await response.aread()
    _adapter(shape).validate_json(response.content, strict=True)
