"""Handling photos: check that an upload is an image within the cap, re-encode it as JPEG.

Re-encoding does three jobs: the evidence store holds one format (JPEG), oversized photos
shrink to ``max_side`` pixels, and metadata such as a phone's GPS position (EXIF) is
dropped before the photo becomes evidence (DOMAIN.md, privacy).
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from central_hub.console.errors import UploadRefused
from central_hub.console.present import format_bytes

__all__ = ["ACCEPTED_FORMATS", "check_size", "normalise_photo"]

#: Image formats a handler's phone produces that we accept.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})


def check_size(size: int, limit: int) -> None:
    """Refuse an upload of ``size`` bytes over ``limit`` (or an empty one)."""
    if size > limit:
        raise UploadRefused(
            f"photo too large: {size} bytes, the limit is {limit}",
            key="upload.too_big",
            status=413,
            limit=format_bytes(limit),
            size=format_bytes(size),
        )
    if size == 0:
        raise UploadRefused("empty upload", key="upload.empty", status=422)


def normalise_photo(data: bytes, *, limit: int, max_side: int = 2560) -> bytes:
    """The upload as a JPEG without metadata, at most ``max_side`` pixels on a side.

    Raises :class:`UploadRefused` when it is empty, over ``limit`` bytes, or not a JPEG,
    PNG or WebP image that decodes. Blocking (decodes pixels): run it in a thread.
    """
    check_size(len(data), limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                probe.verify()
            if fmt not in ACCEPTED_FORMATS:
                raise UploadRefused(
                    f"not an accepted image format: {fmt}", key="upload.not_image", status=415
                )
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadRefused(f"not an image: {exc}", key="upload.not_image", status=415) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRefused(
            f"image too large in pixels: {exc}", key="upload.not_image", status=415
        ) from exc
    rgb.thumbnail((max_side, max_side))
    out = io.BytesIO()
    rgb.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()
