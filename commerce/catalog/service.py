"""Reading farmers, who may act for one, and their products' photos."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from io import BytesIO

from PIL import Image, ImageOps, UnidentifiedImageError

from commerce.catalog.models import Farmer
from core.auth import Principal
from core.db import Database
from core.errors import bad_request, forbidden, not_found


async def load_farmer(db: Database, farmer_id: str) -> Farmer:
    async with db.reader() as s:
        farmer = await s.get(Farmer, farmer_id)
    if farmer is None:
        raise not_found("farmer", farmer_id)
    return farmer


def require_farmer_or_admin(principal: Principal, farmer: Farmer) -> None:
    if not (principal.is_admin or farmer.user_id == principal.user_id):
        raise forbidden("only that farmer or an admin may do this")


# Product photos. A phone's photo is several megabytes and carries EXIF, often with the GPS
# position of the farm (or the farmer's home): it is decoded, bounded, turned upright and
# re-encoded as WebP without any metadata, so what we store and serve is small and says
# nothing but the picture. Pillow does the decoding (a well-kept decoder beats our own
# header parsing, and it refuses decompression bombs).
UPLOAD_TYPES = ("image/jpeg", "image/png", "image/webp")
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
# Pixels, read from the header before anything is decoded. A JPEG is decoded already scaled
# down (its DCT allows 1/2 to 1/8), so a 50-megapixel phone photo costs little memory; a
# PNG or WebP is decoded whole, so it may hold fewer (4096 x 4096 in RGBA is 64 MiB).
MAX_PIXELS = 50_000_000
MAX_PIXELS_DECODED_WHOLE = 16_777_216
MAX_SIDE = 1200  # px: sharp on a phone's card and on a desktop
WEBP_QUALITY = 80
# Pillow's own guard only warns below twice its limit; ours refuses, from the size in the
# header, before anything is decoded (and so Pillow's is off, rather than warning).
Image.MAX_IMAGE_PIXELS = None
# One photo at a time per process: each can take a few hundred MB while it is decoded.
PHOTO_WORK = threading.BoundedSemaphore(1)
_WIDE = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # 16 bits a channel


@dataclass(frozen=True, slots=True)
class Photo:
    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def normalise_photo(raw: bytes) -> Photo:
    """The upload as we keep it, or 400 `invalid_image`. CPU-bound, and memory-hungry while
    it runs: call it in a thread; photos are made one at a time per process."""
    with PHOTO_WORK:
        return _normalise(raw)


def _normalise(raw: bytes) -> Photo:
    try:
        with Image.open(BytesIO(raw)) as img:
            if img.format not in ("JPEG", "PNG", "WEBP"):
                raise bad_request("invalid_image", "send a JPEG, PNG or WebP photo", "body")
            whole = MAX_PIXELS if img.format == "JPEG" else MAX_PIXELS_DECODED_WHOLE
            if img.width * img.height > whole:
                raise bad_request("invalid_image", f"the photo is over {whole:,} pixels", "body")
            if img.format == "JPEG":
                img.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode at 1/2 .. 1/8 scale
            upright = ImageOps.exif_transpose(img)
            if upright.mode in _WIDE:  # 16-bit grey (a PNG): scaled to 8 bits, not clipped
                upright = upright.convert("I").point(lambda v: v * (255 / 65535)).convert("L")
            upright.thumbnail((MAX_SIDE, MAX_SIDE))
            alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
            picture = upright.convert("RGBA" if alpha else "RGB")
            out = BytesIO()
            picture.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, TypeError):
        raise bad_request("invalid_image", "the body is not a photo we can read", "body") from None
    data = out.getvalue()
    return Photo(
        data, "image/webp", picture.width, picture.height, hashlib.sha256(data).hexdigest()
    )


def photo_version(sha256: str) -> str:
    return sha256[:16]


def photo_url(product_id: str, sha256: str) -> str:
    """Where a product's photo is served; the digest in it changes with the photo, so the
    answer can be cached forever."""
    return f"/api/products/{product_id}/image?v={photo_version(sha256)}"


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison of `If-None-Match` (a list, `W/` tags, or `*`)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return any(t == "*" or t.removeprefix("W/") == etag for t in tags)
