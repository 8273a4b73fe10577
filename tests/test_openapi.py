"""The published HTTP contract (`/openapi.json`) is the one the server keeps.

The document is made from the routes' own declarations, so these tests check both ends: every
`/api` route is in it with the access and body it enforces, and Schemathesis, generating
requests from the document alone (valid ones and deliberately invalid ones, as an anonymous
caller, a viewer and an admin, against real resource ids and random ones), never gets a 500,
an undocumented status, or a body that breaks the document. Seed and example count come from
PANEN_FUZZ_SEED / PANEN_FUZZ_EXAMPLES (printed, so a failure can be replayed)."""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, not_a_server_error
from schemathesis.generation.meta import negated_parameters
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from core.settings import Settings
from panen.app import api_routes
from tests.api import World, auth, build_world, register
from tests.conftest import process_env
from tests.processes import Server, running

SEED = int(os.environ.get("PANEN_FUZZ_SEED") or random.randrange(2**32))
EXAMPLES = int(os.environ.get("PANEN_FUZZ_EXAMPLES", "6"))
CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


async def test_openapi_lists_every_api_route_with_its_access_and_body(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    declared = {
        (route.path, method.lower())
        for route in api_routes()
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    published = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert declared == published
    register_op = doc["paths"]["/api/auth/register"]["post"]
    body = register_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert doc["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]["handle"]
    assert {"bearer": []} in doc["paths"]["/api/me"]["get"]["security"]
    assert {} not in doc["paths"]["/api/me"]["get"]["security"]
    order = doc["paths"]["/api/orders"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in order["parameters"])


async def test_docs_page_renders_the_openapi_document(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert 'spec-url="/openapi.json"' in r.text
    assert (await client.get("/static/vendor/rapidoc-min.js")).status_code == 200


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[Server]:
    with running(s := Server(process_env(settings))):
        yield s


@pytest.fixture(scope="module")
async def world(server: Server, admin_token: str) -> World:
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
        return await build_world(http, admin_token)


def real_ids(world: World) -> dict[str, str]:
    """Path parameters that name something that exists, so requests reach past the 404."""
    return {
        "session_id": world.session["id"],
        "charity_id": world.charity["id"],
        "farmer_id": world.farmer_id,
        "user_id": world.farmer.id,
        "provider": "sandbox",
    }


def fuzz(base: str, headers: dict[str, str], ids: dict[str, str], skip: set[str]) -> Counter[int]:
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        op = result.ok()
        if op.definition.raw.get("operationId") in skip:
            continue
        known = {k: v for k, v in ids.items() if f"{{{k}}}" in op.path}
        strategies = [op.as_strategy(mode) for mode in GenerationMode]
        if known:
            strategies.append(op.as_strategy(GenerationMode.POSITIVE, path_parameters=known))

        @hypothesis.settings(
            max_examples=EXAMPLES * len(strategies),
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.seed(SEED)
        @hypothesis.given(case=st.one_of(strategies))
        def check(case: Any) -> None:
            # The caller's login goes on every request, except one whose point is to have
            # none: a negative case that took the Authorization header away must stay
            # without it, or it is a valid request and "accepted" is the right answer.
            mutated = {name.lower() for name, _ in negated_parameters(case._meta)}
            sent = {} if "authorization" in mutated else headers
            response = case.call(base_url=base, headers=sent, timeout=30)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)

        check()
    return statuses


@pytest.mark.parametrize("role", ["anonymous", "viewer", "admin"])
async def test_requests_generated_from_the_openapi_document_get_documented_answers_never_500(
    server: Server, world: World, admin_token: str, role: str
) -> None:
    headers: dict[str, str] = {}
    if role == "viewer":
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as http:
            headers = (await register(http)).headers
    elif role == "admin":
        headers = auth(admin_token)
    # Logging out would revoke the very token the rest of the run calls with.
    skip = set() if role == "anonymous" else {"logout"}
    statuses = fuzz(server.base, headers, real_ids(world), skip)
    print(f"schemathesis {role}: seed={SEED} requests={sum(statuses.values())} {statuses}")
    assert statuses and not any(s >= 500 for s in statuses)


def test_the_asyncapi_document_names_every_frame_the_socket_accepts() -> None:
    import yaml

    from live.gateway import HANDLERS

    doc = yaml.safe_load((Path(__file__).parent.parent / "docs" / "asyncapi.yaml").read_text())

    def resolve(ref: str) -> Any:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    accepted = set()
    for op in doc["operations"].values():
        if op["action"] == "receive":  # what the server receives: client frames
            for message in op["messages"]:
                found = resolve(message["$ref"])
                accepted.add(resolve(found["$ref"])["name"] if "$ref" in found else found["name"])
    assert accepted == set(HANDLERS)


def test_every_api_route_declares_the_shape_of_its_answer() -> None:
    bare = [
        f"{spec.method} {spec.path}"
        for route in api_routes()
        if (spec := getattr(route.endpoint, "panen_spec", None)) is not None  # type: ignore[attr-defined]
        and spec.response is None
        and spec.path != "/metrics"  # Prometheus text
        and spec.media_type == "application/json"  # a CSV is text
    ]
    assert bare == []


async def test_the_shape_check_refuses_an_answer_with_a_key_its_route_does_not_declare() -> None:
    import pydantic

    from tests.contract import check_shape

    request = httpx.Request("GET", "http://panen.test/api/me")
    user = {"id": "usr_1", "handle": "siti", "display_name": "Siti", "roles": ["viewer"]}
    await check_shape(httpx.Response(200, json={"user": user}, request=request))
    for wrong in ({**user, "password_hash": "x"}, {**user, "roles": "viewer"}):
        with pytest.raises(pydantic.ValidationError):
            await check_shape(httpx.Response(200, json={"user": wrong}, request=request))
