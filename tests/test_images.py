"""Uploads: real images accepted, malformed files rejected with a message."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
import torch
from app_fixtures import padded_png
from PIL import Image

from kwta.data import cifar10_sample
from kwta.explorer.images import MAX_UPLOAD_BYTES, ImageError, decode_user_image, to_png_bytes


def _real_image() -> torch.Tensor:
    return cifar10_sample("test").tensors([7])[0]


def test_png_roundtrip_is_exact() -> None:
    x = _real_image()
    img = decode_user_image(to_png_bytes(x))
    assert img.notices == [] and img.original_size == (32, 32)
    assert torch.equal(img.x, x)


def test_jpeg_and_resize_notice() -> None:
    x = _real_image()
    big = Image.open(io.BytesIO(to_png_bytes(x, scale=4)))
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=95)
    img = decode_user_image(buf.getvalue())
    assert img.x.shape == (1, 3, 32, 32) and img.original_size == (128, 128)
    assert any("resized from 128×128" in n for n in img.notices)
    assert (img.x - x).abs().mean() < 0.05  # the same picture


def test_rgba_and_grayscale() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (32, 32), (10, 20, 30, 128)).save(buf, format="PNG")
    img = decode_user_image(buf.getvalue())
    assert any("RGBA" in n for n in img.notices)
    buf = io.BytesIO()
    Image.new("L", (32, 32), 200).save(buf, format="PNG")
    assert torch.allclose(
        decode_user_image(buf.getvalue()).x, torch.full((1, 3, 32, 32), 200 / 255)
    )


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG header claiming a huge image (1-bit grayscale, all zero rows)."""
    raw = zlib.compress(b"\x00" * (1 + width // 8) * 64)  # only a few rows: truncated on purpose
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 this is not an image at all", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image|corrupt"),
        (to_png_bytes(torch.rand(3, 32, 32))[:-40], "corrupt or truncated"),
        (_bomb_png(50_000, 50_000), "too many pixels to decode safely"),
        (b"x" * (MAX_UPLOAD_BYTES + 1), "5,000,001 bytes; the limit is 5 MB .5,000,000 bytes."),
    ],
)
def test_bad_uploads_are_rejected(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message) as err:
        decode_user_image(data)
    assert "bomb" not in str(err.value).lower()  # the app's words, not Pillow's


def test_upload_limit_edge() -> None:
    """Exactly MAX_UPLOAD_BYTES is accepted (a real PNG padded to the limit), one more is not."""
    assert decode_user_image(padded_png(MAX_UPLOAD_BYTES)).x.shape == (1, 3, 32, 32)
    with pytest.raises(ImageError, match="the limit is 5 MB"):
        decode_user_image(padded_png(MAX_UPLOAD_BYTES + 1))


def test_bomb_guard_restored() -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageError):
        decode_user_image(_bomb_png(50_000, 50_000))
    assert before == Image.MAX_IMAGE_PIXELS


def _encoded(arr, mode: str, fmt: str) -> bytes:
    import numpy as np

    buf = io.BytesIO()
    im = Image.fromarray(np.asarray(arr))
    assert im.mode == mode
    im.save(buf, format=fmt)
    return buf.getvalue()


def test_high_depth_greyscale_is_scaled_by_its_real_range() -> None:
    """16-bit PNG, 32-bit integer and float TIFFs: a left-to-right ramp stays a ramp
    (Pillow's own conversion clips them to white), with a notice saying how."""
    import numpy as np

    ramp = np.tile(np.linspace(0.0, 1.0, 32), (32, 1))
    cases = [
        ((ramp * 65535).astype(np.uint16), "I;16", "PNG", "0–65535"),
        ((ramp * 65535).astype(np.int32), "I", "TIFF", "0–65535"),
        ((ramp * 4e6 - 1e6).astype(np.int32), "I", "TIFF", "stretched"),
        (ramp.astype(np.float32), "F", "TIFF", "[0, 1]"),
        ((ramp * 255).astype(np.float32), "F", "TIFF", "[0, 255]"),
    ]
    for arr, mode, fmt, how in cases:
        img = decode_user_image(_encoded(arr, mode, fmt))
        grey = img.x[0, 0]
        assert torch.allclose(grey[0], torch.linspace(0, 1, 32), atol=1 / 255 + 1e-6), mode
        assert torch.equal(img.x[0, 0], img.x[0, 1]) and any(how in n for n in img.notices)


def test_non_finite_float_images_are_refused() -> None:
    import numpy as np

    arr = np.zeros((32, 32), dtype=np.float32)
    arr[3, 3] = np.nan
    with pytest.raises(ImageError, match="non-finite"):
        decode_user_image(_encoded(arr, "F", "TIFF"))
