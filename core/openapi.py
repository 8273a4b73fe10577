"""The HTTP contract as OpenAPI 3.1, made from the routes themselves.

Every `/api` route is declared through `core.http.Api` with its access and its `Spec` (body
model, query parameters, Idempotency-Key, success status); `Ctx` refuses to read anything a
route did not declare, so this document cannot drift from what the code does. Bodies are
the routes' pydantic models, so their limits here are the limits enforced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.routing import BaseRoute, Route

from core.fields import IDEMPOTENCY_KEY_MAX
from core.http import Query, Spec

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "stable, for programs"},
                "message": {"type": "string", "description": "for people"},
                "details": {"type": "object", "description": "the offending field, …"},
            },
        }
    },
}
# What any operation may answer besides success (a bad token is refused even where none is
# needed; 503: a dependency is restarting or the database is busy, with Retry-After).
ERRORS = {
    "400": "malformed or invalid input; `details.field` names it",
    "401": "not logged in, or the token is bad, expired or revoked",
    "403": "not allowed",
    "404": "no such resource",
    "408": "the body took too long to arrive",
    "409": "a conflict (sold out, over the limit, not live, an idempotency key reused …)",
    "413": "the body is too large",
    "429": "too many attempts; see Retry-After",
    "503": "unavailable or busy for now; see Retry-After",
}
ID_PATTERN = r"^[A-Za-z0-9_\-]{1,40}$"
KEY_PATTERN = r"^[\x21-\x7e]+$"
REF = "#/components/schemas/{model}"
# Where a client can be told to slow down (per handle, per address).
RATE_LIMITED = ("/api/auth/login", "/api/auth/register")


def document(routes: Iterable[BaseRoute], *, title: str, version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        spec = getattr(getattr(route, "endpoint", None), "panen_spec", None)
        if not isinstance(route, Route) or not isinstance(spec, Spec):
            continue
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, route.name, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Panen's HTTP API. The live socket (`GET /ws`) is described in"
            " docs/asyncapi.yaml; the whole contract in docs/api.md.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(spec: Spec, name: str, schemas: dict[str, Any]) -> dict[str, Any]:
    summary, _, description = spec.summary.partition("\n")
    op: dict[str, Any] = {
        "operationId": name,
        "summary": summary.strip(),
        "tags": [_tag(spec.path)],
        "parameters": [*_path_params(spec.path), *(_query_param(q) for q in spec.query)],
        "responses": _responses(spec, schemas),
    }
    if description.strip():
        op["description"] = " ".join(description.split())
    # A token is optional where anyone may call, required where a login is.
    op["security"] = [{"bearer": []}] if spec.access.login else [{}, {"bearer": []}]
    if spec.access.roles:
        op["description"] = (
            op.get("description", "") + f" Roles: {', '.join(sorted(spec.access.roles))}."
        ).strip()
    if spec.idempotent:
        op["parameters"].append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": True,
                "description": "the same key and body from the same user give the same result",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": IDEMPOTENCY_KEY_MAX,
                    "pattern": KEY_PATTERN,
                },
            }
        )
    if spec.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _model(spec.body, schemas)}},
        }
    elif spec.upload:
        op["requestBody"] = {
            "required": True,
            "content": {m: {"schema": {"type": "string", "format": "binary"}} for m in spec.upload},
        }
    elif spec.path.startswith("/api/payments/webhook/"):
        op["requestBody"] = {
            "required": True,
            "description": "the provider's signed event, as it sent it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return op


def _tag(path: str) -> str:
    parts = [p for p in path.split("/") if p and p != "api" and not p.startswith("{")]
    return parts[0] if parts else "service"


def _path_params(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": ID_PATTERN},
        }
        for name in re.findall(r"{(\w+)}", path)
    ]


def _query_param(q: Query) -> dict[str, Any]:
    schema: dict[str, Any]
    if q.kind is int:
        schema = {"type": "integer", "minimum": q.lo, "maximum": q.hi}
        if q.default is not None:
            schema["default"] = q.default
    else:
        schema = {"type": "string", "minLength": 1, "maxLength": q.max_length}
        if q.choices:
            schema = {"type": "string", "enum": list(q.choices)}
    return {"name": q.name, "in": "query", "required": q.required, "schema": schema}


def _model(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, str]:
    found = model.model_json_schema(ref_template=REF)
    return _keep(model.__name__, found, schemas)


def _shape(shape: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """A response's TypedDict (or a union of them, inline), as it serialises."""
    found = TypeAdapter(shape).json_schema(ref_template=REF, mode="serialization")
    name = getattr(shape, "__name__", None)
    if name is None:
        schemas.update(found.pop("$defs", {}))
        return found
    return _keep(name, found, schemas)


def _keep(name: str, found: dict[str, Any], schemas: dict[str, Any]) -> dict[str, str]:
    for sub_name, sub in found.pop("$defs", {}).items():
        schemas[sub_name] = sub
    schemas[name] = found
    return {"$ref": REF.format(model=name)}


def _responses(spec: Spec, schemas: dict[str, Any]) -> dict[str, Any]:
    if spec.path == "/metrics":
        ok: dict[str, Any] = {"description": "Prometheus text", "content": {"text/plain": {}}}
    elif spec.media_type != "application/json":
        ok = {
            "description": "success",
            "content": {spec.media_type: {"schema": {"type": "string"}}},
        }
    elif spec.response is not None:
        shape = _shape(spec.response, schemas)
        ok = {"description": "success", "content": {"application/json": {"schema": shape}}}
    else:
        ok = {
            "description": "success",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    out: dict[str, Any] = {str(spec.status): ok}
    if spec.status == 201 and spec.idempotent:
        out["200"] = {**ok, "description": "the resource this key made before"}
    if spec.path == "/readyz":
        out["503"] = {**ok, "description": "a dependency is down; `checks` says which"}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for code, text in ERRORS.items():
        if code in ("408", "413") and spec.method == "GET":
            continue  # no body to be slow or too large
        if code == "403" and not spec.access.login:
            continue  # anyone may
        if code == "429" and spec.path not in RATE_LIMITED:
            continue
        out.setdefault(code, {"description": text, "content": error})
    if spec.upload:
        out["415"] = {"description": "not one of the accepted media types", "content": error}
    return out
