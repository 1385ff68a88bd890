"""Per-epoch checkpoints in safetensors (no pickle), written atomically, so a
stopped run resumes bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from kwta.training.config import RUN_FIELDS, TrainConfig
from kwta.training.epoch import EpochRecord, TrainState
from kwta.zoo.hub import sha256_of

__all__ = [
    "checkpoint_dir",
    "flatten_optimizer_state",
    "load_checkpoint",
    "save_checkpoint",
    "unflatten_optimizer_state",
]


def flatten_optimizer_state(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into tensors (for safetensors) and JSON-able data.

    Returns:
        ``(tensors, meta)``: ``tensors["optimizer.state.<param>.<key>"]`` (e.g.
        the SGD momentum buffers) and ``meta = {"param_groups": …, "scalars": …}``.
    """
    sd = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            name = f"{pid}.{key}"
            if isinstance(value, Tensor):
                tensors[f"optimizer.state.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`: a state dict for ``load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    prefix = "optimizer.state."
    for key, value in tensors.items():
        if key.startswith(prefix):
            pid, name = key[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def checkpoint_dir(out_dir: str | os.PathLike[str], name: str) -> Path:
    """Where a run's checkpoint lives: ``<out_dir>/<name>.ckpt/``."""
    return Path(out_dir) / f"{name}.ckpt"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | os.PathLike[str], state: TrainState, config: TrainConfig
) -> Path:
    """Write ``checkpoint.safetensors`` (model, optimiser, free-AT δ) and ``checkpoint.json``.

    The JSON is written last and pins the tensors file's sha256, so a crash
    mid-write never leaves a checkpoint that looks complete.

    Returns:
        The JSON path.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"model.{k}": v.detach().to("cpu").contiguous() for k, v in state.model.state_dict().items()
    }
    opt_tensors, opt_meta = flatten_optimizer_state(state.optimizer)
    tensors.update(opt_tensors)
    if state.free_delta is not None:
        tensors["free_delta"] = state.free_delta.detach().to("cpu").contiguous()
    weights = d / "checkpoint.safetensors"
    tmp = d / "checkpoint.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, weights)
    meta = {
        "format": "kwta-checkpoint/1",
        "epoch": state.epoch,
        "sha256": sha256_of(weights),
        "optimizer": opt_meta,
        "scaler": state.scaler.state_dict() if state.scaler is not None else None,
        "history": [dataclasses.asdict(r) for r in state.history],
        "wall_time": state.wall_time,
        "resumes": list(state.resumes),
        "config": dataclasses.asdict(config),
    }
    path = d / "checkpoint.json"
    _atomic_write_text(path, json.dumps(meta, indent=1) + "\n")
    return path


def load_checkpoint(
    directory: str | os.PathLike[str], state: TrainState, config: TrainConfig
) -> None:
    """Restore ``state`` in place from :func:`save_checkpoint`'s files.

    Raises:
        FileNotFoundError: No checkpoint there.
        ValueError: The checkpoint is corrupt or was made with a different
            configuration (only :data:`RUN_FIELDS` may differ).
    """
    d = Path(directory)
    path = d / "checkpoint.json"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from in {d}")
    meta = json.loads(path.read_text())
    weights = d / "checkpoint.safetensors"
    if not weights.is_file() or sha256_of(weights) != meta.get("sha256"):
        raise ValueError(f"checkpoint {weights} is missing or does not match {path.name}")
    saved = {k: v for k, v in meta["config"].items() if k not in RUN_FIELDS}
    now = config.training_fields()
    diff = {
        k: (saved.get(k), now.get(k)) for k in set(saved) | set(now) if saved.get(k) != now.get(k)
    }
    if diff:
        listed = ", ".join(
            f"{k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in sorted(diff.items())
        )
        raise ValueError(f"cannot resume {d}: the configuration differs ({listed})")
    tensors = load_file(str(weights))
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    state.model.load_state_dict(model_state, strict=True)
    opt_sd = unflatten_optimizer_state(tensors, meta["optimizer"])
    state.optimizer.load_state_dict(opt_sd)
    dev = next(state.model.parameters()).device
    state.free_delta = tensors["free_delta"].to(dev) if "free_delta" in tensors else None
    if state.scaler is not None and meta.get("scaler"):
        state.scaler.load_state_dict(meta["scaler"])
    state.epoch = int(meta["epoch"])
    state.history = [EpochRecord(**r) for r in meta["history"]]
    state.wall_time = float(meta.get("wall_time", 0.0))
    state.resumes = [int(r) for r in meta.get("resumes", [])]
