"""HTTP: the public face of the log, checkpoints, entries, proofs and the public key, to anyone."""

from __future__ import annotations

from starlette.responses import Response

from core.errors import ApiError, bad_request
from core.http import ANYONE, Api, Ctx, Query, json
from donations.transparency import checkpoint, log
from donations.transparency.schemas import (
    CheckpointOut,
    ConsistencyReply,
    EntriesPage,
    InclusionReply,
    PublicKeyOut,
)
from donations.transparency.service import _committed_size, b64, signing_key

MAX_PAGE = 1000


# A proof or an entry at a fixed size never changes: let caches keep it.
IMMUTABLE = {"Cache-Control": "public, max-age=86400, immutable"}


api = Api()


@api.get(
    "/api/transparency/checkpoint", ANYONE, query=(Query("size", int),), response=CheckpointOut
)
async def get_checkpoint(ctx: Ctx) -> Response:
    """The latest signed checkpoint, or the one of `?size=` if it was published."""
    db = ctx.services.db
    size = ctx.opt_query_int("size")
    if size is not None:
        async with db.lagging() as s:
            found = await checkpoint.at_size(s, size)
        if found is None:  # perhaps only just published: the primary knows
            async with db.reader() as s:
                found = await checkpoint.at_size(s, size)
        if found is None:
            raise ApiError(404, "not_found", f"no checkpoint of size {size}", {"field": "size"})
        return json(found.to_json(), headers=IMMUTABLE)
    async with db.reader() as s:
        current = await checkpoint.latest(s)
    if current is None:
        current = await checkpoint.publish(db, signing_key(ctx.services))
    return json(current.to_json(), headers={"Cache-Control": "no-cache"})


@api.get(
    "/api/transparency/entries",
    ANYONE,
    query=(Query("start", int, required=True), Query("end", int)),
    response=EntriesPage,
)
async def get_entries(ctx: Ctx) -> Response:
    start = ctx.query_int("start")
    given_end = ctx.opt_query_int("end")
    end = start + 100 if given_end is None else given_end
    if end < start:
        raise bad_request("invalid_field", "end must not be before start", "end")
    if end - start > MAX_PAGE:
        raise bad_request("invalid_field", f"at most {MAX_PAGE} entries a page", "end")
    async with ctx.services.db.lagging() as s:  # entries never change: a replica's are right
        size, _ = await log.head(s)
        end = min(end, size)
        rows = await log.entries(s, start, end) if start < end else []
    return json(
        {
            "start": start,
            "end": max(start, end),
            "size": size,
            "entries": [
                {"index": e.idx, "kind": e.kind, "entry": e.entry, "leaf_hash": b64(e.leaf_hash)}
                for e in rows
            ],
        }
    )


@api.get(
    "/api/transparency/proof/inclusion",
    ANYONE,
    query=(Query("index", int, required=True), Query("size", int, required=True)),
    response=InclusionReply,
)
async def get_inclusion_proof(ctx: Ctx) -> Response:
    index = ctx.query_int("index")
    size = ctx.query_int("size")
    if size > await _committed_size(ctx.services):
        raise bad_request("invalid_field", "size is beyond the log's current size", "size")
    if index >= size:
        raise bad_request("invalid_field", "index must be below size", "index")
    async with ctx.services.db.reader() as s:
        hashes = await log.inclusion_proof(s, index, size)
        [row] = await log.entries(s, index, index + 1)
    return json(
        {
            "index": index,
            "size": size,
            "leaf_hash": b64(row.leaf_hash),
            "hashes": [b64(h) for h in hashes],
        },
        headers=IMMUTABLE,
    )


@api.get(
    "/api/transparency/proof/consistency",
    ANYONE,
    query=(
        Query("first", int, lo=1, required=True),
        Query("second", int, lo=1, required=True),
    ),
    response=ConsistencyReply,
)
async def get_consistency_proof(ctx: Ctx) -> Response:
    first = ctx.query_int("first")
    second = ctx.query_int("second")
    if second > await _committed_size(ctx.services):
        raise bad_request("invalid_field", "second is beyond the log's current size", "second")
    if first > second:
        raise bad_request("invalid_field", "first must not be above second", "first")
    async with ctx.services.db.reader() as s:
        hashes = await log.consistency_proof(s, first, second)
    return json(
        {"first": first, "second": second, "hashes": [b64(h) for h in hashes]}, headers=IMMUTABLE
    )


@api.get("/api/transparency/public-key", ANYONE, response=PublicKeyOut)
async def get_public_key(ctx: Ctx) -> Response:
    key = signing_key(ctx.services).verifier
    return json(
        {
            "key_id": key.key_id.hex(),
            "algorithm": "ed25519",
            "public_key": b64(key.public_key),
            "key_name": key.name,
            "vkey": key.vkey,
        }
    )
