"""Helpers shared by the analyses: batching, eval-mode views, losses and seeded noise."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MAX_GRID",
    "Attack",
    "Callback",
    "LossName",
    "as_batch",
    "as_image_batch",
    "check_batch_size",
    "check_loss",
    "device_of",
    "eval_view",
    "labels_like",
    "per_sample_loss",
    "rademacher",
    "to_plain",
]


LossName = Literal["ce", "margin"]


Callback = Callable[[int, int], None]


Attack = Callable[[nn.Module, Tensor, Tensor], Tensor]


#: Largest landscape grid side accepted (201² = 40 401 forward passes).
MAX_GRID = 201


def to_plain(value: Any) -> Any:
    """Tensors to (nested) lists, tuples to lists, dataclass-like to dicts; the rest as is."""
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def device_of(model: nn.Module, fallback: torch.device) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return fallback


def eval_view(model: nn.Module) -> nn.Module:
    """``model`` itself if it is wholly in eval mode, else a deep copy in eval mode."""
    if any(m.training for m in model.modules()):
        return copy.deepcopy(model).eval()
    return model


def as_image_batch(x: Tensor) -> Tensor:
    """``(C, H, W)`` or ``(1, C, H, W)`` → ``(1, C, H, W)``."""
    if x.dim() == 3:
        return x.unsqueeze(0)
    if x.dim() == 4 and x.shape[0] == 1:
        return x
    raise ValueError(f"expected one image of shape (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")


def as_batch(x: Tensor) -> Tensor:
    """``(C, H, W)`` → ``(1, C, H, W)``; batched inputs as they are."""
    if x.dim() == 3:
        return x.unsqueeze(0)
    if x.dim() < 2:
        raise ValueError(f"expected a batch of inputs, got shape {tuple(x.shape)}")
    return x


def labels_like(y: int | Tensor, n: int, device: torch.device) -> Tensor:
    t = torch.as_tensor(y, dtype=torch.long).reshape(-1).to(device)
    if t.numel() != n:
        raise ValueError(f"expected {n} label(s), got {t.numel()}")
    return t


def _margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample margin ``max_{j≠y} z_j − z_y`` (positive once misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return other - true


def per_sample_loss(logits: Tensor, y: Tensor, loss: str) -> Tensor:
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if loss == "margin":
        return _margin_loss(logits, y)
    raise ValueError(f"unknown loss {loss!r}; choose 'ce' or 'margin'")


def check_loss(loss: str) -> None:
    if loss not in ("ce", "margin"):
        raise ValueError(f"unknown loss {loss!r}; choose 'ce' or 'margin'")


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def rademacher(shape: Sequence[int], generator: torch.Generator) -> Tensor:
    """±1 entries (CPU, float32) drawn from ``generator``."""
    return torch.randint(0, 2, tuple(shape), generator=generator).float().mul_(2).sub_(1)
