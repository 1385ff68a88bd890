"""Turning user-supplied bytes into a model input, safely, and back into PNG bytes.

Used by the app for uploads: size and type limits, Pillow's decompression-bomb
guard, corrupt files rejected with a clear message, non-32×32 images resized
with a notice. Bytes in, tensor out: an upload never touches the file system.
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_MB",
    "MAX_UPLOAD_PIXELS",
    "ImageError",
    "UserImage",
    "decode_user_image",
    "to_png_bytes",
]


#: Largest upload accepted, in MB as Streamlit's uploader counts them in the browser
#: (10**6 bytes): the widget, the label, ``.streamlit/config.toml`` and the README say this.
MAX_UPLOAD_MB = 5
#: The same limit in bytes, enforced again when the upload is decoded.
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1_000_000


#: Largest decoded image accepted, in pixels (Pillow's bomb guard is set to this).
MAX_UPLOAD_PIXELS = 4096 * 4096


_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")


_DECODE_LOCK = threading.Lock()


class ImageError(ValueError):
    """An upload that cannot be used; the message is meant for the user."""


@dataclass(frozen=True)
class UserImage:
    """A decoded upload.

    Attributes:
        x: ``float32`` tensor ``(1, 3, 32, 32)`` in [0, 1].
        notices: What was changed on the way (resizing, dropped alpha, …).
        original_size: ``(width, height)`` as uploaded.
    """

    x: Tensor
    notices: list[str] = field(default_factory=list)
    original_size: tuple[int, int] = (32, 32)


def decode_user_image(
    data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES, size: int = 32
) -> UserImage:
    """Decode an uploaded image into a ``size``×``size`` RGB tensor in [0, 1].

    Raises:
        ImageError: Empty, too large, not an image, an unsupported format,
            corrupt or truncated data, or a decompression bomb.
    """
    from PIL import Image

    if not data:
        raise ImageError("the file is empty")
    if len(data) > max_bytes:
        raise ImageError(
            f"the file is {len(data):,} bytes; the limit is {max_bytes / 1e6:g} MB "
            f"({max_bytes:,} bytes)"
        )
    notices: list[str] = []
    # Pillow's pixel limit and the warnings filters are process-wide: one decode at a time.
    with _DECODE_LOCK:
        rgb, original = _decode(data, notices)
    if rgb.size != (size, size):
        notices.append(
            f"resized from {rgb.size[0]}×{rgb.size[1]} to {size}×{size} (the models take "
            f"{size}×{size} CIFAR-10 images)"
        )
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
    arr = np.asarray(rgb, dtype=np.uint8)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    return UserImage(x=x, notices=notices, original_size=original)


#: Pillow modes with more than 8 bits per sample: 16-bit and 32-bit integers, 32-bit floats.
#: Pillow's own ``convert("RGB")`` clips them at 255 (a 16-bit PNG turns almost white).
_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _high_depth_to_rgb(im: Any, notices: list[str]) -> Any:
    """A greyscale image of more than 8 bits, scaled by its real range to 8-bit RGB.

    16-bit images (and 32-bit integer ones whose values fit 16 bits) are divided
    by 65 535, their full scale; float images already in [0, 1] (or [0, 255]) are
    taken as they are; anything else is stretched from its minimum to its maximum,
    and the notice says so. Non-finite values are refused.
    """
    from PIL import Image

    arr = np.asarray(im, dtype=np.float64)
    if arr.size == 0 or not np.isfinite(arr).all():
        raise ImageError(f"the {im.mode} image holds non-finite values; cannot convert it")
    lo, hi = float(arr.min()), float(arr.max())
    if im.mode.startswith("I;16") or (im.mode == "I" and lo >= 0 and hi <= 65535):
        unit, how = arr / 65535.0, "16-bit greyscale scaled from 0–65535"
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        unit, how = arr, "float greyscale in [0, 1] taken as is"
    elif im.mode == "F" and lo >= 0 and hi <= 255:
        unit, how = arr / 255.0, "float greyscale in [0, 255] scaled"
    else:
        span = hi - lo if hi > lo else 1.0
        unit = (arr - lo) / span
        how = f"{im.mode} greyscale stretched from its range [{lo:g}, {hi:g}] to [0, 1]"
    notices.append(f"converted to RGB ({how})")
    grey = np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def _decode(data: bytes, notices: list[str]) -> tuple[Any, tuple[int, int]]:
    """Decode under a temporary pixel limit; returns the RGB image and its original size."""
    from PIL import Image, UnidentifiedImageError

    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_UPLOAD_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.format not in _FORMATS:
                    raise ImageError(f"unsupported image format {im.format}; use PNG or JPEG")
                im.load()  # decode now: truncated or corrupt data fails here
                original = im.size
                if im.mode in _HIGH_DEPTH:
                    rgb = _high_depth_to_rgb(im, notices)
                else:
                    if im.mode not in ("RGB", "L"):
                        notices.append(f"converted from {im.mode} to RGB")
                    rgb = im.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(
            f"the image has too many pixels to decode safely (at most "
            f"{MAX_UPLOAD_PIXELS:,} are accepted; CIFAR-10 images are 32×32)"
        ) from err
    except UnidentifiedImageError as err:
        raise ImageError("the file is not an image Pillow can read (PNG or JPEG expected)") from err
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, ImageError):
            raise
        raise ImageError(f"the image is corrupt or truncated: {err}") from err
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    return rgb, original


def to_png_bytes(x: Tensor, *, scale: int = 1) -> bytes:
    """PNG bytes of one image tensor ``(3, H, W)`` or ``(1, 3, H, W)`` in [0, 1].

    Args:
        x: The image.
        scale: Integer nearest-neighbour upscaling (for display of 32×32 images).
    """
    from PIL import Image

    img = x.detach().to("cpu").reshape(-1, *x.shape[-3:])[0].clamp(0, 1)
    arr = (img.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    im = Image.fromarray(arr)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
