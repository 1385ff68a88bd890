"""A researcher's own CIFAR-10 classifier made a model of the zoo: ``kwta import``.

:func:`read_state_dict` reads a checkpoint without ever running code from it: the format is
decided by the file's first bytes, not its name — safetensors is parsed as such; a PyTorch
file (zip or legacy pickle) only through ``torch.load(weights_only=True)``, which refuses
anything but tensors and plain containers; everything else is refused. The state dict may
sit bare, under ``state_dict`` or ``model_state_dict``, with ``module.``/``model.`` prefixes
(RobustBench's layouts). :func:`import_model` checks its keys and shapes strictly against an
architecture of :data:`kwta.models.ARCHITECTURES` or a timm model (``timm:NAME``), keeps the
model's normalisation inside it (inputs stay in [0, 1]), writes hash-checked safetensors and
a card in the one :class:`~kwta.zoo.card.ModelCard` schema, with its clean accuracy and
PGD-20 measured on the bundled 1 000-image sample.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import struct
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from kwta import paper
from kwta.attacks._core import is_correct
from kwta.attacks.sign_gradient import pgd_linf
from kwta.data import cifar10_sample
from kwta.models import ARCHITECTURES, build_model, known_architecture
from kwta.zoo.hub import save_model

__all__ = [
    "MAX_IMPORT_BYTES",
    "ImportRefused",
    "import_model",
    "read_state_dict",
]

#: The largest checkpoint read (a WideResNet-34-10 in fp32 is about 185 MB).
MAX_IMPORT_BYTES = 1024 * 2**20

#: A model name: a file stem (the card and the weights are named after it).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NESTED = ("state_dict", "model_state_dict", "model", "net")
_PREFIXES = ("module.", "model.")


class ImportRefused(ValueError):
    """The checkpoint cannot be imported as it is (format, layout, keys or shapes)."""


def _kind(head: bytes) -> str:
    """``"safetensors"``, ``"zip"`` (torch.save), ``"pickle"`` (legacy torch.save) or ``"?"``."""
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        return "pickle"
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 0 < n < 100 * 2**20 and head[8:9] == b"{":
            return "safetensors"
    return "?"


def read_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], str]:
    """The tensors of a checkpoint file and its sha256, without running anything from it.

    Raises:
        ImportRefused: Too large, not a safetensors or PyTorch file (whatever its name), a
            PyTorch file holding more than tensors (``weights_only`` refused it), or no
            state dict inside.
    """
    p = Path(path)
    if not p.is_file():
        raise ImportRefused(f"{p.name}: no such file")
    size = p.stat().st_size
    if size > MAX_IMPORT_BYTES:
        raise ImportRefused(
            f"{p.name}: {size / 2**20:.0f} MiB, over the {MAX_IMPORT_BYTES >> 20} MiB limit"
        )
    data = p.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    kind = _kind(data[:16])
    if kind == "safetensors":
        from safetensors.torch import load as load_bytes

        try:
            return dict(load_bytes(data)), digest
        except Exception as err:  # safetensors raises its own error type
            raise ImportRefused(f"{p.name}: not a valid safetensors file ({err})") from None
    if kind == "?":
        raise ImportRefused(
            f"{p.name}: neither safetensors nor a PyTorch checkpoint (decided by its bytes, "
            "not its name)"
        )
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ImportRefused(
            f"{p.name}: refused, not readable as tensors only (a PyTorch file that holds more "
            f"than tensors, or a damaged one): torch.load(weights_only=True) said {first!r}"
        ) from None
    return _state_dict(obj, p.name), digest


def _state_dict(obj: Any, where: str) -> dict[str, Tensor]:
    for key in _NESTED:  # RobustBench and training scripts nest it
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not obj:
        raise ImportRefused(f"{where}: no state dict inside (found {type(obj).__name__})")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ImportRefused(f"{where}: the state dict holds no tensors")
    for prefix in _PREFIXES:  # DataParallel's "module.", wrappers' "model."
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def _load_strict(model: nn.Module, tensors: Mapping[str, Tensor], arch: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    if missing or unexpected:
        parts = [
            f"{what} {keys[:5]}" + (" …" if len(keys) > 5 else "")
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise ImportRefused(f"the checkpoint does not fit {arch}: " + "; ".join(parts))
    shapes = [k for k in own if tuple(own[k].shape) != tuple(tensors[k].shape)]
    if shapes:
        k = shapes[0]
        raise ImportRefused(
            f"the checkpoint does not fit {arch}: {k} is {tuple(tensors[k].shape)}, the "
            f"architecture wants {tuple(own[k].shape)}"
            + (f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else "")
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=True)


def _measure(model: nn.Module, n: int) -> dict[str, Any]:
    """Clean accuracy and PGD-20 (ε = 0.031, α = 0.003, random start, seed 0) on the first
    ``n`` of the bundled 1 000 test images."""
    test = cifar10_sample("test")
    n = max(1, min(int(n), len(test)))
    x, y = test.tensors(range(n))
    ok = is_correct(model, x, y, batch_size=250)
    robust = torch.zeros_like(ok)
    g = torch.Generator().manual_seed(0)
    for s in range(0, len(x), 250):
        xa = pgd_linf(
            model,
            x[s : s + 250],
            y[s : s + 250],
            eps=paper.EPS,
            alpha=paper.STEP_SIZE,
            steps=20,
            generator=g,
        )
        robust[s : s + 250] = ok[s : s + 250] & is_correct(model, xa, y[s : s + 250])
    return {
        "clean_accuracy": float(ok.float().mean()),
        "clean_n": len(y),
        "robust_accuracy": {"pgd": float(robust.float().mean())},
        "robust_n": len(y),
        "eps": paper.EPS,
        "note": (
            f"measured by kwta import on the first {n} of the bundled 1 000-image test sample "
            f"(PGD-20: eps {paper.EPS}, alpha {paper.STEP_SIZE}, random start, seed 0), not the "
            "full test set"
        ),
    }


def import_model(
    weights: str | os.PathLike[str],
    *,
    arch: str,
    name: str,
    out_dir: str | os.PathLike[str],
    arch_kwargs: Mapping[str, Any] | None = None,
    dtype: str = "float16",
    description: str = "",
    n: int = 1000,
) -> dict[str, Any]:
    """Import a CIFAR-10 checkpoint as ``<out_dir>/<name>.safetensors`` + ``<name>.json``.

    Args:
        weights: The checkpoint (safetensors, or a PyTorch state dict).
        arch: An architecture of :data:`kwta.models.ARCHITECTURES`, or ``"timm:NAME"``.
        name: The model's name (a file stem: letters, digits, ``.``, ``_``, ``-``).
        out_dir: The folder the explorer reads (``$KWTA_PRETRAINED``).
        arch_kwargs: The architecture's keywords (``width``, ``act``, ``mean``, ``std``, …).
        dtype: Storage dtype: ``"float16"``, ``"bfloat16"`` or ``"float32"``.
        description: One line for the pickers and tables.
        n: Bundled test images the card's clean accuracy and PGD-20 are measured on (the
            first ``n`` of 1 000).

    Returns:
        The card as written.

    Raises:
        ImportRefused: A bad name, architecture, file or state dict (nothing is written).
    """
    if not _NAME.match(name):
        raise ImportRefused(
            f"model name {name[:80]!r} must be a file stem (letters, digits, . _ -)"
        )
    if not known_architecture(arch):
        known = [*sorted(ARCHITECTURES), "timm:NAME"]
        raise ImportRefused(f"unknown architecture {arch[:40]!r}; choose from {known}")
    storage = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if dtype not in storage:
        raise ImportRefused(f"dtype must be one of {sorted(storage)}, got {dtype!r}")
    kwargs = dict(arch_kwargs or {})
    try:
        model = build_model(arch, **kwargs)
    except (TypeError, ValueError) as err:
        raise ImportRefused(f"{arch} does not take {json.dumps(kwargs)[:200]}: {err}") from None
    t0 = time.perf_counter()
    tensors, source_sha = read_state_dict(weights)
    _load_strict(model, tensors, arch)
    model.eval()
    with torch.no_grad():  # measure what is saved: the weights rounded to the storage dtype
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.to(storage[dtype]).float())
    metrics = _measure(model, n)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    card: dict[str, Any] = {
        "name": name,
        "arch": arch,
        "arch_kwargs": kwargs,
        "description": description or f"{arch} imported from {Path(weights).name}",
        "status": "imported: not trained by this project; its numbers were measured at import",
        "training": {
            "method": "imported",
            "source": {"file": Path(weights).name, "sha256": source_sha},
            "imported_in_s": round(time.perf_counter() - t0, 1),
        },
        "metrics": metrics,
    }
    return save_model(model, out / f"{name}.safetensors", card, dtype=storage[dtype])
