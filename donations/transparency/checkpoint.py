"""Signed checkpoints: published on a cadence, each proven consistent with the one before.

Publishing holds a transaction-scoped advisory lock, so two publishers (two workers, or a
worker and a receipt request) take turns; sizes are the table's key, so one size never has
two checkpoints; and a new checkpoint is stored only after the consistency proof from the
previous one, built from the stored subtrees, verifies against both signed roots.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import rfc3339, utcnow
from core.db import Database
from donations.transparency import log, merkle
from donations.transparency.models import Checkpoint
from donations.transparency.schemas import CheckpointOut
from donations.transparency.signing import EM_DASH, SigningKey, checkpoint_body

logger = logging.getLogger("panen.transparency")

# pg_advisory_xact_lock key of checkpoint publication ("tlogckpt" as a 64-bit integer).
PUBLISH_LOCK = 0x746C6F67636B7074


class LogForkError(RuntimeError):
    """The log's current tree does not extend the last signed one: never sign it."""


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    origin: str
    size: int
    root_hash: bytes
    timestamp: datetime
    signature: bytes  # key id || Ed25519 signature
    key_name: str

    @property
    def body(self) -> str:
        return checkpoint_body(self.origin, self.size, self.root_hash)

    @property
    def note(self) -> str:
        sig = base64.b64encode(self.signature).decode()
        return f"{self.body}\n{EM_DASH} {self.key_name} {sig}\n"

    def to_json(self) -> CheckpointOut:
        return {
            "origin": self.origin,
            "size": self.size,
            "root_hash": base64.b64encode(self.root_hash).decode(),
            "timestamp": rfc3339(self.timestamp),
            "signature": base64.b64encode(self.signature).decode(),
            "key_id": self.signature[:4].hex(),
            "note": self.note,
        }

    @classmethod
    def from_row(cls, row: Checkpoint) -> SignedCheckpoint:
        return cls(
            origin=row.origin,
            size=row.size,
            root_hash=bytes(row.root_hash),
            timestamp=row.published_at,
            signature=bytes(row.signature),
            key_name=row.origin,
        )


async def latest(session: AsyncSession) -> SignedCheckpoint | None:
    row = (
        await session.execute(select(Checkpoint).order_by(Checkpoint.size.desc()).limit(1))
    ).scalar_one_or_none()
    return None if row is None else SignedCheckpoint.from_row(row)


async def at_size(session: AsyncSession, size: int) -> SignedCheckpoint | None:
    row = await session.get(Checkpoint, size)
    return None if row is None else SignedCheckpoint.from_row(row)


async def publish(db: Database, key: SigningKey) -> SignedCheckpoint:
    """Sign the log's current tree unless the latest checkpoint already covers it."""
    async with db.transaction() as s:
        await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PUBLISH_LOCK})
        previous = await latest(s)
        size, head_root = await log.head(s)
        root = await log.root_at(s, size)
        if root != head_root:
            raise LogForkError(f"the stored subtrees and the head disagree at size {size}")
        if previous is not None:
            if previous.signature[:4] != key.key_id:
                raise LogForkError("the last checkpoint was signed by another key")
            if previous.size == size:
                if previous.root_hash != root:
                    raise LogForkError(f"two different roots for size {size}")
                return previous
            if previous.size > size:
                raise LogForkError(f"the log shrank from {previous.size} to {size}")
            if previous.size > 0:
                proof = await log.consistency_proof(s, previous.size, size)
                try:
                    merkle.verify_consistency(previous.size, size, proof, previous.root_hash, root)
                except merkle.ProofError as exc:
                    raise LogForkError(
                        f"size {size} is not consistent with checkpoint {previous.size}: {exc}"
                    ) from exc
        now = utcnow()
        signature = key.sign_body(checkpoint_body(key.name, size, root))
        s.add(
            Checkpoint(
                size=size,
                origin=key.name,
                root_hash=root,
                key_id=key.key_id,
                signature=signature,
                published_at=now,
                previous_size=None if previous is None else previous.size,
            )
        )
        logger.info("published checkpoint", extra={"size": size})
        return SignedCheckpoint(key.name, size, root, now, signature, key.name)


async def covering(db: Database, key: SigningKey, size: int) -> SignedCheckpoint:
    """The latest checkpoint if it covers `size` entries, else a freshly published one."""
    async with db.reader() as s:
        current = await latest(s)
    if current is not None and current.size >= size:
        return current
    return await publish(db, key)
