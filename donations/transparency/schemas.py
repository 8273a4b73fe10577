"""JSON of the log: checkpoints, keys, proofs and entries as served (hashes, signatures and
keys base64)."""

from __future__ import annotations

from typing import Literal

from core.shapes import TypedDict, closed


@closed
class CheckpointOut(TypedDict):
    origin: str
    size: int
    root_hash: str
    timestamp: str | None
    signature: str  # the 4-byte key id, then the Ed25519 signature of `note`
    key_id: str  # hex
    note: str  # the C2SP signed-note text


@closed
class KeyOut(TypedDict):
    key_id: str
    algorithm: Literal["ed25519"]
    public_key: str
    vkey: str


@closed
class PublicKeyOut(KeyOut):
    key_name: str


@closed
class InclusionProof(TypedDict):
    index: int
    size: int
    hashes: list[str]


@closed
class InclusionReply(InclusionProof):
    leaf_hash: str


@closed
class ConsistencyReply(TypedDict):
    first: int
    second: int
    hashes: list[str]


@closed
class EntryOut(TypedDict):
    index: int
    kind: str
    entry: str  # canonical JSON, exactly the bytes hashed
    leaf_hash: str


@closed
class EntriesPage(TypedDict):
    start: int
    end: int
    size: int
    entries: list[EntryOut]
