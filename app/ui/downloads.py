"""Download buttons for a page's results, and a result's provenance downloads.

Every JSON result carries one provenance block (:mod:`kwta.explorer.provenance`) made by
:func:`provenance` from the settings the page computed with; :func:`result_downloads`
offers it beside a Python script of the same call (:mod:`kwta.explorer.scripts`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from kwta.explorer.actions import ActionInputs
from kwta.explorer.provenance import (
    ImageRef,
    ModelRef,
    Provenance,
    balanced_images,
    make_provenance,
    result_document,
)
from kwta.explorer.provenance import device_name as _device_name
from kwta.explorer.runs import from_uint8
from kwta.explorer.scripts import python_script
from ui.config import DEVICE
from ui.images import test_images

_MIME = {
    ".csv": "text/csv",
    ".json": "application/json",
    ".png": "image/png",
    ".py": "text/x-python",
}


def download(container: Any, label: str, data: str | bytes, filename: str, *, key: str) -> None:
    """A download button whose MIME type follows the file name; it does not rerun the page."""
    container.download_button(
        label,
        data,
        filename,
        _MIME[filename[filename.rfind(".") :]],
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )


@functools.cache
def _this_device_name() -> str:
    return _device_name(DEVICE)


def provenance(
    action: str,
    settings: Mapping[str, Any],
    *,
    model: tuple[str, str] | None = None,
    image: ImageRef | None = None,
    batch: tuple[int, int] | None = None,
) -> Provenance:
    """The provenance of a page's run: ``action`` with ``settings`` on this server's device,
    on ``model`` (name, sha256) and ``image``, or on the ``batch`` (n, seed) of
    class-balanced test images."""
    return make_provenance(
        action,
        settings,
        model=ModelRef(*model) if model else None,
        image=image,
        device=DEVICE,
        processor=_this_device_name(),
        batch=balanced_images(test_images(), *batch)[0] if batch else None,
    )


def _inputs(prov: Provenance, model: nn.Module | None) -> ActionInputs:
    """What the action ran on, from its provenance (the page's test images, or the upload)."""
    if model is None:  # the toy fit: no model, no image
        return ActionInputs(nn.Identity(), torch.zeros(1, 3, 32, 32), 0)
    if prov.batch is not None:
        xs, ys = prov.batch.tensors(test_images())
        return ActionInputs(model, xs[:1], int(ys[0]), xs, ys)
    if prov.image is None:
        raise ValueError(f"action {prov.action!r} names no image")
    x = from_uint8(prov.image.pixels_array(None if prov.image.is_upload else test_images()))
    return ActionInputs(model, x, prov.image.label)


def result_downloads(
    columns: tuple[Any, Any],
    content: Mapping[str, Any],
    prov: Provenance,
    result: Any,
    model: nn.Module | None,
    stem: str,
    *,
    label: str = "Result JSON",
    key: str,
) -> None:
    """``stem.json`` (``content`` with the provenance, the summary and the numbers ``kwta
    reproduce`` compares) and ``stem.py`` (the same call as a script), in two columns.

    Args:
        columns: Where the two buttons go.
        content: The page's own result content.
        prov: How the result was made (:func:`provenance`).
        result: The action's result.
        model: The model it ran on (``None``: the toy fit).
        stem: File name without suffix.
        label: The JSON button's label.
        key: Widget key prefix.
    """
    doc = dict(content) | result_document(prov, result, _inputs(prov, model))
    download(columns[0], label, json.dumps(doc), f"{stem}.json", key=f"{key}_json")
    download(columns[1], "Python", python_script(prov), f"{stem}.py", key=f"{key}_py")
