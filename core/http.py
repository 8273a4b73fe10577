"""How every HTTP endpoint is declared: who may call it, how its body is read, how it answers.

An endpoint is registered through an `Api` with an explicit `Access`; there is no other way
to add a route under `/api`, and a test checks that every one declares its access.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.auth import Principal
from core.errors import ApiError, bad_request, forbidden, unauthorized
from core.fields import control_character_at, is_idempotency_key
from core.services import Services

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """Base of every request body: unknown fields and type coercion are both refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(content, status_code=status, headers=headers)


def error_response(err: ApiError) -> Response:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call an endpoint: anyone, any logged-in user, or holders of some roles.

    Finer rules ("that farmer", "its host") are checked by the handler once it has loaded
    the resource; `Access` is the coarse gate in front of it.
    """

    login: bool
    roles: frozenset[str] = frozenset()

    def describe(self) -> str:
        if not self.login:
            return "anyone"
        return "roles:" + ",".join(sorted(self.roles)) if self.roles else "logged_in"


ANYONE = Access(login=False)
LOGGED_IN = Access(login=True)


def roles(*names: str) -> Access:
    return Access(login=True, roles=frozenset(names))


@dataclass(frozen=True, slots=True)
class Query:
    """A query parameter an endpoint reads: declared once, read through `Ctx.query` and
    `Ctx.query_int` with these bounds, and published in the OpenAPI document."""

    name: str
    kind: type = str  # str or int
    default: int | None = None  # an int's when absent
    lo: int = 0
    hi: int = 2**62
    required: bool = False
    choices: tuple[str, ...] = ()
    max_length: int = 40


LIMIT = Query("limit", int, 50, 1, 200)


@dataclass(frozen=True, slots=True)
class Spec:
    """What an endpoint takes and gives: checked on every call (reading anything not
    declared is a programming error), and the source of `/openapi.json`."""

    method: str
    path: str
    access: Access
    summary: str
    body: type[BaseModel] | None = None
    query: tuple[Query, ...] = ()
    idempotent: bool = False  # takes an Idempotency-Key header
    status: int = 200  # on success (201: creates; an idempotent repeat answers 200)
    # The success body's type (a TypedDict the handler's serialisers are typed with):
    # published in the OpenAPI document and checked against every answer in the tests.
    response: Any = None
    media_type: str = "application/json"  # of the success body
    # A raw upload instead of a JSON body (a photo): the media types it may come as.
    upload: tuple[str, ...] = ()


class Ctx:
    """One request as a handler sees it."""

    __slots__ = ("principal", "request", "services", "spec")

    def __init__(
        self, request: Request, services: Services, principal: Principal | None, spec: Spec
    ) -> None:
        self.request = request
        self.services = services
        self.principal = principal
        self.spec = spec

    @property
    def user(self) -> Principal:
        if self.principal is None:
            raise unauthorized()
        return self.principal

    def path(self, name: str) -> str:
        return cast(str, self.request.path_params[name])

    def _declared(self, name: str) -> Query:
        for q in self.spec.query:
            if q.name == name:
                return q
        raise RuntimeError(f"{self.spec.path} reads query {name!r} without declaring it")

    def _raw(self, q: Query) -> str | None:
        """A declared parameter's text, None when absent; given empty (`?before=`) it is
        neither absent nor a value: 400, as the document's minimum length says."""
        raw = self.request.query_params.get(q.name)
        if raw is None:
            if q.required:
                raise bad_request(
                    "missing_field", f"query parameter {q.name!r} is required", q.name
                )
            return None
        if raw == "":
            raise bad_request("invalid_field", f"{q.name} must not be empty", q.name)
        return raw

    def query(self, name: str) -> str | None:
        q = self._declared(name)
        raw = self._raw(q)
        if raw is None:
            return None
        if len(raw) > q.max_length:
            raise bad_request("invalid_field", f"{name} is longer than {q.max_length}", name)
        if q.choices and raw not in q.choices:
            raise bad_request(
                "invalid_field", f"{name} must be one of {', '.join(q.choices)}", name
            )
        return raw

    def query_int(self, name: str) -> int:
        value = self.opt_query_int(name)
        if value is None:
            raise bad_request("missing_field", f"query parameter {name!r} is required", name)
        return value

    def opt_query_int(self, name: str) -> int | None:
        """An integer query parameter: its declared default when absent (None if it has
        none), 400 when it is not an integer within its declared bounds."""
        q = self._declared(name)
        raw = self._raw(q)
        if raw is None:
            return q.default
        if not (raw.isascii() and raw.lstrip("-").isdigit() and len(raw) <= 20):
            raise bad_request("invalid_field", f"{name} must be an integer", name)
        value = int(raw)
        if not q.lo <= value <= q.hi:
            raise bad_request("invalid_field", f"{name} must be between {q.lo} and {q.hi}", name)
        return value

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def idempotency_key(self) -> str:
        """The required `Idempotency-Key` of a write a client may retry."""
        if not self.spec.idempotent:
            raise RuntimeError(f"{self.spec.path} reads an Idempotency-Key it does not declare")
        key = self.request.headers.get("idempotency-key")
        if key is None or not key.strip():
            raise bad_request(
                "missing_field", "the Idempotency-Key header is required", "Idempotency-Key"
            )
        if not is_idempotency_key(key):
            raise bad_request(
                "invalid_field",
                "Idempotency-Key: 1-100 printable ASCII characters",
                "Idempotency-Key",
            )
        return key

    async def upload(self, limit: int) -> tuple[bytes, str]:
        """A raw body of one of the declared media types, at most `limit` bytes: 415
        `unsupported_media_type` for another type, 413 over the limit, 400 when empty."""
        if not self.spec.upload:
            raise RuntimeError(f"{self.spec.path} reads an upload it does not declare")
        media = self.request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in self.spec.upload:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send the body as one of {', '.join(self.spec.upload)}",
                {"field": "Content-Type", "accepted": list(self.spec.upload)},
            )
        raw = await read_body(self.request, limit)
        if not raw:
            raise bad_request("missing_field", "the body is empty", "body")
        return raw, media

    async def body(self, model: type[M]) -> M:
        if self.spec.body is not model:
            raise RuntimeError(f"{self.spec.path} reads a {model.__name__} it does not declare")
        raw = await read_body(self.request, self.services.settings.max_body_bytes)
        return parse_body(raw, model)


# A body that trickles in slower than this is dropped (408): a slow-body client would
# otherwise hold a connection, and its request's resources, as long as it liked. Slow
# headers are the proxy's to cut (README: "Running it for real").
BODY_TIMEOUT_S = 10.0


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"the body is over {limit} bytes", {"limit": limit})
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(
                        413, "too_large", f"the body is over {limit} bytes", {"limit": limit}
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408, "request_timeout", f"the body took over {BODY_TIMEOUT_S:.0f} s to arrive"
        ) from None
    return b"".join(chunks)


def _field_of(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def refuse_control_characters(value: Any, path: str = "") -> None:
    """400 `invalid_field` naming the first string that holds a control character."""
    where = control_character_at(value, path)
    if where is not None:
        raise bad_request("invalid_field", f"{where}: control characters are not allowed", where)


def parse_body(raw: bytes, model: type[M]) -> M:
    try:
        # orjson is strict RFC 8259 (no NaN, no trailing garbage); pydantic's parser is not.
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request("malformed_json", "the body is not valid JSON", "body") from None
    refuse_control_characters(parsed)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc) from None


def validate(model: type[M], data: Mapping[str, Any]) -> M:
    """A body that arrived already parsed (a socket frame's fields): the same checks and the
    same answer for the same mistake as over HTTP (it is checked as the JSON it came as:
    pydantic's strict mode reads JSON and Python objects differently)."""
    refuse_control_characters(dict(data))
    try:
        return model.model_validate_json(orjson.dumps(data))
    except ValidationError as exc:
        raise _invalid(exc) from None


def frame_body(model: type[M], fields: Mapping[str, Any]) -> tuple[M, str]:
    """A socket frame that does what an HTTP write does: its body (the fields other than
    `type`, `id` and `idempotency_key`) checked by the same model, and its
    `idempotency_key` as the header is; the same answer for the same mistake."""
    body = validate(model, {k: v for k, v in fields.items() if k not in FRAME_FIELDS})
    key = fields.get("idempotency_key")
    if key is None:
        raise bad_request("missing_field", "idempotency_key is required", "idempotency_key")
    if not isinstance(key, str) or not is_idempotency_key(key):
        raise bad_request(
            "invalid_field", "idempotency_key: 1-100 printable ASCII characters", "idempotency_key"
        )
    return body, key


FRAME_FIELDS = ("type", "id", "idempotency_key")


def _invalid(exc: ValidationError) -> ApiError:
    """400 naming the first offending field: `missing_field`, `unknown_field`, or
    `invalid_field`; every error is listed in `details.errors`."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return bad_request("malformed_json", "the body is not valid JSON", "body")
    first = errors[0]
    field = _field_of(first["loc"])
    code = "missing_field" if first["type"] == "missing" else "invalid_field"
    if first["type"] == "extra_forbidden":
        code = "unknown_field"
    return bad_request(
        code,
        f"{field}: {first['msg']}",
        field,
        errors=[
            {"field": _field_of(e["loc"]), "message": e["msg"], "type": e["type"]} for e in errors
        ],
    )


Handler = Callable[[Ctx], Awaitable[Response]]


class Api:
    """A set of routes of one module, each with its declared access and `Spec`."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        path: str,
        access: Access,
        *,
        body: type[BaseModel] | None = None,
        query: Sequence[Query] = (),
        idempotent: bool = False,
        status: int = 200,
        response: Any = None,
        media_type: str = "application/json",
        upload: Sequence[str] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            summary = (handler.__doc__ or handler.__name__.replace("_", " ")).strip()
            spec = Spec(
                method,
                path,
                access,
                summary,
                body,
                tuple(query),
                idempotent,
                status,
                response,
                media_type,
                tuple(upload),
            )

            declared = frozenset(q.name for q in spec.query)

            async def endpoint(request: Request) -> Response:
                services: Services = request.app.state.services
                # Every path parameter and query value, before anything reads them (most
                # requests have neither: their checks are skipped, not run on nothing).
                if request.path_params:
                    refuse_control_characters(dict(request.path_params))
                if request.scope["query_string"]:
                    for name, value in request.query_params.multi_items():
                        refuse_control_characters({name: value})
                    # A parameter the route does not read is refused rather than ignored: a
                    # misspelt `?limt=5` should fail loudly, not silently give the default.
                    for name in request.query_params:
                        if name not in declared:
                            raise bad_request(
                                "unknown_parameter",
                                f"unknown query parameter {name[:64]!r}",
                                name[:64],
                            )
                principal = await authenticate(request, services)
                if access.login:
                    if principal is None:
                        raise unauthorized()
                    if access.roles and not principal.has(*access.roles):
                        raise forbidden(
                            f"needs one of the roles: {', '.join(sorted(access.roles))}"
                        )
                return await handler(Ctx(request, services, principal, spec))

            endpoint.__name__ = handler.__name__
            endpoint.__doc__ = handler.__doc__
            endpoint.panen_access = access  # type: ignore[attr-defined]
            endpoint.panen_spec = spec  # type: ignore[attr-defined]
            self.routes.append(Route(path, endpoint, methods=[method], name=handler.__name__))
            return handler

        return register

    def get(
        self,
        path: str,
        access: Access,
        *,
        query: Sequence[Query] = (),
        response: Any = None,
        media_type: str = "application/json",
    ) -> Callable[[Handler], Handler]:
        return self.route(
            "GET", path, access, query=query, response=response, media_type=media_type
        )

    def post(
        self,
        path: str,
        access: Access,
        *,
        body: type[BaseModel] | None = None,
        query: Sequence[Query] = (),
        idempotent: bool = False,
        status: int = 200,
        response: Any = None,
    ) -> Callable[[Handler], Handler]:
        return self.route(
            "POST",
            path,
            access,
            body=body,
            query=query,
            idempotent=idempotent,
            status=status,
            response=response,
        )


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "invalid_token", "use 'Authorization: Bearer <token>'")
    return token.strip()


async def authenticate(request: Request, services: Services) -> Principal | None:
    token = bearer_token(request.headers.get("authorization"))
    return None if token is None else await services.identities.principal(token)
