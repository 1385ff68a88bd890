"""Weights on disk: safetensors files, each with a JSON card that pins its sha256.

A card (RobustBench's ``model_info`` in spirit) is one JSON file per weights file:
``{"name", "arch", "arch_kwargs", "weights", "sha256", "dtype", "training", "metrics",
"paper", ...}``. Weights are never pickled, and every file's sha256 is checked
against its card before a single tensor is read.

Pretrained models live in ``pretrained/`` at the repository root, or in
``$KWTA_PRETRAINED``. A model *name* is only ever looked up among the cards found
there; it never becomes a file path.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file
from torch import nn

from kwta.models import build_model
from kwta.utils import default_device
from kwta.zoo.card import CardError, ModelCard

__all__ = [
    "WeightsError",
    "build_from_card",
    "list_pretrained",
    "load_card",
    "load_from_card",
    "load_pretrained",
    "pretrained_dir",
    "save_model",
    "sha256_of",
]


class WeightsError(RuntimeError):
    """Weights missing, tampered with, truncated or not matching their card."""


def pretrained_dir() -> Path:
    """``$KWTA_PRETRAINED`` if set, else ``pretrained/`` beside the package."""
    env = os.environ.get("KWTA_PRETRAINED")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "pretrained"


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(
    model: nn.Module,
    weights_path: str | os.PathLike[str],
    card: dict[str, Any],
    *,
    dtype: torch.dtype | None = torch.float16,
) -> dict[str, Any]:
    """Write ``model``'s state as safetensors and its card (same stem, ``.json``).

    Args:
        model: The network; its state dict is saved (floating tensors cast to
            ``dtype`` unless it is ``None``).
        weights_path: Destination ``*.safetensors``.
        card: Card fields; must hold ``arch`` and ``arch_kwargs``. ``weights``,
            ``sha256`` and ``dtype`` are filled in.

    Returns:
        The card as written.
    """
    path = Path(weights_path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights must be a .safetensors file, got {path.name}")
    for key in ("arch", "arch_kwargs"):
        if key not in card:
            raise ValueError(f"card needs {key!r}")
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        state[k] = v.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    path.chmod(0o644)  # safetensors writes 0600; weights are meant to be shared read-only
    full = dict(card)
    full.update(
        weights=path.name,
        sha256=sha256_of(path),
        dtype=str(dtype).removeprefix("torch.") if dtype is not None else "as-trained",
    )
    full.setdefault("name", path.stem)
    try:
        written = ModelCard.from_dict(full)
    except CardError as err:
        raise ValueError(str(err)) from err
    written.write(path.with_suffix(".json"))
    return written.to_dict()


def load_card(card_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a card through the schema (:class:`~kwta.zoo.card.ModelCard`) as a dict.

    Raises:
        WeightsError: Not valid JSON or not following the schema.
    """
    try:
        return ModelCard.read(card_path).to_dict()
    except CardError as err:
        raise WeightsError(str(err)) from err


def build_from_card(card: dict[str, Any]) -> nn.Module:
    """An untrained network of the card's architecture."""

    return build_model(card["arch"], **card["arch_kwargs"])


def load_from_card(
    card_path: str | os.PathLike[str], device: torch.device | str | None = None
) -> nn.Module:
    """Build the card's model, check the weights' sha256, load them; eval mode, fp32.

    On a CUDA ``device`` fp32 is IEEE fp32 (:func:`kwta.utils.exact_cuda_math`).

    Raises:
        WeightsError: Missing file, sha256 mismatch, or tensors that do not fit.
    """
    card_path = Path(card_path)
    card = load_card(card_path)
    weights = card_path.parent / Path(card["weights"]).name  # never leave the card's folder
    if not weights.is_file():
        raise WeightsError(f"weights file {weights} named by {card_path.name} is missing")
    data = weights.read_bytes()  # hash and parse the same bytes: no swap in between
    digest = hashlib.sha256(data).hexdigest()
    if digest != card["sha256"]:
        raise WeightsError(
            f"{weights.name}: sha256 {digest[:16]}… does not match its card "
            f"({str(card['sha256'])[:16]}…); the file is corrupt or was changed. Refusing to load."
        )
    try:
        state = load_bytes(data)
    except Exception as err:  # safetensors raises its own SafetensorError
        raise WeightsError(f"{weights.name} is not a valid safetensors file: {err}") from err
    model = build_from_card(card)
    ref = model.state_dict()
    state = {k: v.to(ref[k].dtype) if k in ref else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"{weights.name} does not fit its card's architecture: {err}") from err
    # default_device makes fp32 IEEE fp32 on CUDA; None keeps the model on the CPU
    return model.to(default_device(device) if device is not None else None).eval()


def list_pretrained(directory: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Cards of the pretrained models, by name (unreadable cards are skipped)."""
    d = Path(directory) if directory is not None else pretrained_dir()
    out: dict[str, dict[str, Any]] = {}
    if not d.is_dir():
        return out
    for p in sorted(d.glob("*.json")):
        try:
            card = load_card(p)
        except WeightsError:
            continue
        out[str(card.get("name", p.stem))] = card | {"card_file": p.name}
    return out


def load_pretrained(
    name: str,
    device: torch.device | str | None = None,
    *,
    directory: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Load a pretrained model by name in eval mode after checking its sha256.

    Raises:
        KeyError: No card has that name (the message lists the names there are).
        WeightsError: The weights are missing or do not match the card.
    """
    d = Path(directory) if directory is not None else pretrained_dir()
    cards = list_pretrained(d)
    if name not in cards:
        raise KeyError(f"no pretrained model {name!r} in {d}; available: {sorted(cards)}")
    return load_from_card(d / cards[name]["card_file"], device)
