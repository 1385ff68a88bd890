"""The image a page works on: a bundled CIFAR-10 test image (by class, index or seed) or
an upload, chosen in the sidebar (:func:`image_picker`), its keys bound to the URL."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch
from torch import Tensor

from kwta.data import CIFAR10_CLASSES, CIFAR10Tensors, DataSourceError, cifar10, cifar10_sample
from kwta.explorer.images import MAX_UPLOAD_MB, ImageError, decode_user_image, to_png_bytes
from kwta.explorer.provenance import ImageRef, dataset_image, uploaded_image
from kwta.explorer.runs import from_uint8, to_uint8
from ui.config import UPLOAD_TYPES
from ui.state import init_state
from ui.text import literal


@dataclass(frozen=True)
class PickedImage:
    """The image a page works on.

    Attributes:
        pixels: ``uint8`` array ``(3, 32, 32)`` (cache-friendly, exact).
        label: The true class (the user's choice for uploads).
        caption: What to show under the thumbnail.
        source: Short provenance, e.g. ``"test #17"`` or ``"upload cat.png"``.
        ref: Its reference in a result's provenance (test split and index, or the
            upload's pixels).
    """

    pixels: np.ndarray
    label: int
    caption: str
    source: str
    ref: ImageRef

    @property
    def x(self) -> Tensor:
        """``(1, 3, 32, 32)`` float in [0, 1]."""
        return from_uint8(self.pixels)


@st.cache_resource(show_spinner="Loading CIFAR-10 test images…")
def test_images() -> CIFAR10Tensors:
    """CIFAR-10 test images: ``$KWTA_DATA`` if set and usable, else the bundled sample."""
    try:
        return cifar10("test")
    except DataSourceError:
        return cifar10_sample("test")


def balanced_batch(n: int, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """The first ``n`` class-balanced test images (seed 0) and their labels, on ``device``:
    the batch every page's many-image result uses."""
    data = test_images()
    x, y = data.tensors(data.balanced_indices(min(n, len(data)), seed=0))
    return x.to(device), y.to(device)


def _class_indices(data: CIFAR10Tensors, label: int) -> list[int]:
    return [int(i) for i in (data.labels == label).nonzero().flatten().tolist()]


def _bump(key: str) -> None:
    st.session_state[key] = int(st.session_state.get(key, 0)) + 1


def image_picker(prefix: str) -> PickedImage:
    """Sidebar widgets choosing an image; never fails (falls back to a bundled image).

    Modes: a bundled test image by class (and rank within the class) or by
    index, a random one (seeded; the seed is in the URL), or an upload. Upload
    problems are reported with ``st.error`` and resized/converted images with
    ``st.info``; the page then keeps working on the fallback image.
    """
    sb = st.sidebar
    data = test_images()
    n = len(data)
    modes = ["class", "index", "random", "upload"]
    labels = {"class": "by class", "index": "by index", "random": "random", "upload": "upload"}
    k_mode, k_cls, k_nth, k_idx, k_seed = (
        f"{prefix}_{s}" for s in ("img", "cls", "nth", "idx", "imgseed")
    )
    init_state(k_mode, "class", choices=modes)
    sb.radio("Image", modes, format_func=labels.__getitem__, key=k_mode, horizontal=True)
    mode = st.session_state[k_mode]

    def bundled(index: int) -> PickedImage:
        x, y = data.tensors([index])
        lab = int(y[0])
        return PickedImage(
            pixels=to_uint8(x),
            label=lab,
            caption=f"test image #{index} · {CIFAR10_CLASSES[lab]}",
            source=f"test #{index}",
            ref=dataset_image(data, index),
        )

    picked: PickedImage
    if mode == "class":
        init_state(k_cls, "cat", choices=list(CIFAR10_CLASSES))
        sb.selectbox("Class", list(CIFAR10_CLASSES), key=k_cls)
        idxs = _class_indices(data, CIFAR10_CLASSES.index(st.session_state[k_cls])) or [0]
        init_state(k_nth, 0, lo=0, hi=len(idxs) - 1)
        sb.number_input(
            f"Which {st.session_state[k_cls]} (0–{len(idxs) - 1})", 0, len(idxs) - 1, key=k_nth
        )
        picked = bundled(idxs[int(st.session_state[k_nth])])
    elif mode == "index":
        init_state(k_idx, 0, lo=0, hi=n - 1)
        sb.number_input(f"Test image index (0–{n - 1})", 0, n - 1, key=k_idx)
        picked = bundled(int(st.session_state[k_idx]))
    elif mode == "random":
        init_state(k_seed, 0, lo=0, hi=10**9)
        c1, c2 = sb.columns([3, 2], vertical_alignment="bottom")
        c1.number_input("Random seed", 0, 10**9, key=k_seed)
        c2.button(
            "New image",
            key=f"{prefix}_reroll",
            on_click=_bump,
            args=(k_seed,),
            icon=":material/casino:",
        )
        picked = bundled(random.Random(int(st.session_state[k_seed])).randrange(n))
    else:
        picked = _upload(prefix, bundled(0))
    sb.image(to_png_bytes(picked.x, scale=4), caption=picked.caption, width=128)
    return picked


def _upload(prefix: str, fallback: PickedImage) -> PickedImage:
    sb = st.sidebar
    k_lab = f"{prefix}_label"
    up = sb.file_uploader(
        f"PNG or JPEG, ≤ {MAX_UPLOAD_MB} MB (resized to 32×32)",
        type=UPLOAD_TYPES,
        key=f"{prefix}_upload",
        # the browser refuses a larger file itself (its MB are 10**6 bytes, as ours)
        max_upload_size=MAX_UPLOAD_MB,
    )
    init_state(k_lab, "cat", choices=list(CIFAR10_CLASSES), url=False)  # an upload: not in links
    sb.selectbox("True class of the upload", list(CIFAR10_CLASSES), key=k_lab)
    if up is None:
        sb.info("No file yet: using bundled test image #0.", icon=":material/info:")
        return fallback
    try:
        img = decode_user_image(up.getvalue())
    except ImageError as err:
        st.error(
            f"Cannot use {literal(up.name)}: {literal(err, 200)}. "
            "Showing bundled test image #0 instead.",
            icon=":material/broken_image:",
        )
        return fallback
    for note in img.notices:
        st.info(f"{literal(up.name)}: {note}.", icon=":material/photo_size_select_large:")
    lab = CIFAR10_CLASSES.index(st.session_state[k_lab])
    pixels = to_uint8(img.x)
    return PickedImage(
        pixels=pixels,
        label=lab,
        caption=f"upload {literal(up.name)} · labelled {CIFAR10_CLASSES[lab]}",
        source=f"upload {up.name}",
        ref=uploaded_image(pixels, lab),
    )
