"""Small shared helpers: device choice, seeding, batching."""

from __future__ import annotations

import platform
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["batches", "default_device", "seed_all"]


def default_device(prefer: str | torch.device | None = None) -> torch.device:
    """``prefer`` if given, else the current CUDA device when one is present, else CPU."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Slices ``[0:b], [b:2b], …`` covering ``range(n)``."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def device_name(device: torch.device) -> str:
    """Human-readable name of ``device`` for cards."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine() or "unknown CPU"
    return f"{device.type}: {cpu} ({torch.get_num_threads()} threads)"
