"""Reading farmers, who may act for one, and their products' photos."""

from __future__ import annotations

import hashlib
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
MAX_PIXELS = 50_000_000  # ~8K x 6K: any real photo; refused before decoding above it
MAX_SIDE = 1200  # px: sharp on a phone's card and on a desktop
WEBP_QUALITY = 80
# Pillow's own guard only warns below twice its limit; ours refuses, from the size in the
# header, before anything is decoded (and so Pillow's is off, rather than warning).
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True, slots=True)
class Photo:
    data: bytes
    content_type: str
    width: int
    height: int
    sha256: str


def normalise_photo(raw: bytes) -> Photo:
    """The upload as we keep it, or 400 `invalid_image`. CPU-bound: run it in a thread."""
    try:
        with Image.open(BytesIO(raw)) as img:
            if img.format not in ("JPEG", "PNG", "WEBP"):
                raise bad_request("invalid_image", "send a JPEG, PNG or WebP photo", "body")
            if img.width * img.height > MAX_PIXELS:
                raise bad_request(
                    "invalid_image", f"the photo is over {MAX_PIXELS:,} pixels", "body"
                )
            upright = ImageOps.exif_transpose(img)
            upright.thumbnail((MAX_SIDE, MAX_SIDE))
            mode = (
                "RGBA"
                if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
                else "RGB"
            )
            picture = upright.convert(mode)
            out = BytesIO()
            picture.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
    ):
        raise bad_request("invalid_image", "the body is not a photo we can read", "body") from None
    data = out.getvalue()
    return Photo(
        data, "image/webp", picture.width, picture.height, hashlib.sha256(data).hexdigest()
    )


def photo_url(product_id: str, sha256: str) -> str:
    """Where a product's photo is served; the digest in it changes with the photo, so the
    answer can be cached forever."""
    return f"/api/products/{product_id}/image?v={sha256[:16]}"
