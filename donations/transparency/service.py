"""The log's signing key and encodings for its HTTP face."""

from __future__ import annotations

import base64

from core.services import Services
from donations.transparency import log, signing


def signing_key(services: Services) -> signing.SigningKey:
    return signing.load_or_create(services.settings.signing_key_file)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def _committed_size(services: Services) -> int:
    async with services.db.reader() as s:
        size, _ = await log.head(s)
    return size
