"""Small shared helpers: device choice, seeding, batching."""

from __future__ import annotations

import platform
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = ["batches", "default_device", "exact_cuda_math", "seed_all"]


def default_device(prefer: str | torch.device | None = None) -> torch.device:
    """``prefer`` if given, else the current CUDA device when one is present, else CPU.

    A CUDA device also turns TF32 off (:func:`exact_cuda_math`).
    """
    if prefer is not None:
        device = torch.device(prefer)
    else:
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if device.type == "cuda":
        exact_cuda_math()
    return device


def exact_cuda_math() -> None:
    """Make fp32 mean IEEE fp32 on CUDA: TF32 off for convolutions and matrix products.

    PyTorch lets cuDNN compute fp32 convolutions in TF32 (a 10-bit mantissa) by
    default. ReLU networks barely notice; k-WTA does, because which units win is a
    discontinuous function of the pre-activations (Sec. 3): the rounding changes the
    winners and then the prediction. Measured on an NVIDIA H200 (torch 2.11, the 500
    class-balanced bundled test images, predictions compared with the CPU's fp32):
    with TF32 the GPU agreed on 97.8 % of them for ``kwta0.1-nat``, 99.2 % for
    ``kwta0.2-nat`` and 93.2 % for ``kwta0.1-at``; with TF32 off on 100 % for every zoo
    model (ReLU models: 100 % either way). Every evaluation, attack and card number
    therefore runs in IEEE fp32. Process-wide and one-way; bf16 autocast (the training
    fast path, :mod:`kwta.nn.precision`) does not read these flags.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


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
