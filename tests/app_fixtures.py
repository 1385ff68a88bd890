"""Helpers shared by ``test_app.py`` and ``test_browser.py``: a small, real model zoo.

The zoo holds the session's two width-8 ResNet-18s of ``conftest.py`` (trained on
real CIFAR-10 images), saved with :func:`kwta.zoo.hub.save_model` and cards like the
CLI writes, plus metrics measured here on the bundled test images.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kwta.attacks._core import robust_accuracy
from kwta.attacks.registry import run_attack
from kwta.data import cifar10_sample
from kwta.zoo.hub import save_model

REPO = Path(__file__).resolve().parents[1]
APP_MAIN = REPO / "app" / "main.py"
APP_SERVER = REPO / "app" / "server.py"  # what the Dockerfile runs: main.py inside st.App

#: Names of the zoo's models (used as defaults by the app: ReLU vs k-WTA).
RELU_NAME = "relu-nat"
KWTA_NAME = "kwta0.2-nat"


def _metrics(model: nn.Module) -> dict[str, Any]:
    data = cifar10_sample("test")
    x, y = data.tensors()
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    idx = data.balanced_indices(50, seed=0)
    xs, ys = data.tensors(idx)
    x_adv = run_attack("pgd", model, xs, ys, steps=10, generator=torch.Generator().manual_seed(0))
    rob = robust_accuracy(model, xs, ys, x_adv)
    return {
        "clean_accuracy": clean,
        "clean_n": len(y),
        "robust_accuracy": {"pgd": rob},
        "A_rob": rob,
        "robust_n": len(ys),
        "eps": 0.031,
    }


def make_zoo(directory: Path, relu_model: nn.Module, kwta_model: nn.Module) -> Path:
    """Save the two test models with their cards into ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, model, act, act_kwargs in (
        (RELU_NAME, relu_model, "relu", {}),
        (KWTA_NAME, kwta_model, "kwta", {"ratio": 0.2}),
    ):
        card = {
            "name": name,
            "arch": "resnet18",
            "arch_kwargs": {"width": 8, "act": act, "act_kwargs": act_kwargs},
            "description": "test fixture: width-8 ResNet-18, 12 epochs on 500 real CIFAR-10 images",
            "training": {"method": "natural", "epochs": 12},
            "metrics": _metrics(model),
        }
        save_model(model, directory / f"{name}.safetensors", card)
    return directory


def make_broken_zoo(directory: Path, zoo: Path) -> Path:
    """A copy of the k-WTA card whose weights file is missing."""
    directory.mkdir(parents=True, exist_ok=True)
    card = json.loads((zoo / f"{KWTA_NAME}.json").read_text())
    card["name"] = "kwta-broken"
    card["weights"] = "kwta-broken.safetensors"
    (directory / "kwta-broken.json").write_text(json.dumps(card))
    shutil.copy(zoo / f"{RELU_NAME}.json", directory / f"{RELU_NAME}.json")
    shutil.copy(zoo / f"{RELU_NAME}.safetensors", directory / f"{RELU_NAME}.safetensors")
    return directory


def agreeing_index(*models: nn.Module) -> int:
    """The first bundled test image every model classifies correctly (a telling attack demo)."""
    x, y = cifar10_sample("test").tensors()
    ok = torch.ones_like(y, dtype=torch.bool)
    with torch.no_grad():
        for m in models:
            ok &= m(x).argmax(1) == y
    hits = ok.nonzero().flatten()
    return int(hits[0]) if len(hits) else 0


def padded_png(total_bytes: int) -> bytes:
    """A real 32×32 PNG of exactly ``total_bytes`` bytes: a private ancillary chunk (``prVt``,
    which decoders skip) pads it — an upload at the size limit's edge."""
    from kwta.explorer.images import to_png_bytes

    png = to_png_bytes(torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)))
    head, iend = png[:-12], png[-12:]
    n = total_bytes - len(png) - 12
    if n < 0:
        raise ValueError(f"a PNG of {total_bytes} bytes is too small to hold the image")
    pad = b"\0" * n
    chunk = struct.pack(">I", n) + b"prVt" + pad + struct.pack(">I", zlib.crc32(b"prVt" + pad))
    return head + chunk + iend


def in_ci() -> bool:
    """Whether the tests run in CI (env ``CI`` set to anything but empty/0/false)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
