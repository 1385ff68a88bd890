"""The Fig. 2 demo: one vector through ReLU, max-pool, LWTA and k-WTA."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kwta.nn.functional import check_ratio, k_from_ratio, kwta, lwta

__all__ = [
    "MAX_VECTOR",
    "ActivationDemo",
    "activation_demo",
    "parse_vector",
    "random_vector",
]


#: Longest vector :func:`parse_vector` accepts (the Fig. 2 demo is about small vectors).
MAX_VECTOR = 64


@dataclass(frozen=True, eq=False)
class ActivationDemo:
    """One vector through the four activations of the paper's Fig. 2.

    Attributes:
        x: ``(N,)`` the input.
        relu: ``(N,)`` ReLU output.
        maxpool: ``(ceil(N / group_size),)`` max over each group (downsampled; the
            last group may be shorter).
        lwta: ``(N,)`` local winner-take-all: each group keeps its maximum.
        kwta: ``(N,)`` k-WTA: the ``k`` largest entries of the whole vector are kept.
        k: Number of k-WTA winners, ``max(1, floor(γ·N))``.
        ratio: Sparsity ratio γ.
        group_size: Group size of max-pool and LWTA.
    """

    x: Tensor
    relu: Tensor
    maxpool: Tensor
    lwta: Tensor
    kwta: Tensor
    k: int
    ratio: float
    group_size: int

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers."""
        return {
            "x": self.x.tolist(),
            "relu": self.relu.tolist(),
            "maxpool": self.maxpool.tolist(),
            "lwta": self.lwta.tolist(),
            "kwta": self.kwta.tolist(),
            "k": self.k,
            "ratio": self.ratio,
            "group_size": self.group_size,
        }


def activation_demo(
    values: Sequence[float] | Tensor, *, ratio: float, group_size: int = 2
) -> ActivationDemo:
    """Apply ReLU, max-pooling, LWTA and k-WTA to one vector (Fig. 2).

    Args:
        values: The ``N`` input values (``N ≥ 1``).
        ratio: k-WTA sparsity ratio γ in (0, 1]; ``k = max(1, floor(γ·N))``.
        group_size: Group size of max-pooling and LWTA (≥ 1). LWTA needs ``N``
            divisible by it; a ragged last group is padded with ``-inf`` here so
            that any ``N`` works (the padding never wins).

    Returns:
        An :class:`ActivationDemo` (float64 tensors).

    Raises:
        ValueError: Empty or non-finite input, bad ratio or group size.
    """
    x = torch.as_tensor(values, dtype=torch.float64).reshape(-1).clone()
    if x.numel() == 0:
        raise ValueError("the vector is empty")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the vector must hold finite numbers")
    ratio = check_ratio(ratio)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group size must be a positive int, got {group_size!r}")
    n = x.numel()
    groups = math.ceil(n / group_size)
    padded = torch.full((groups * group_size,), -math.inf, dtype=torch.float64)
    padded[:n] = x
    # ``+ 0.0`` turns the -0.0 of masked negative entries into 0.0 for display.
    return ActivationDemo(
        x=x,
        relu=x.clamp(min=0.0) + 0.0,
        maxpool=padded.view(groups, group_size).amax(dim=1),
        lwta=lwta(x.view(1, -1), group_size).view(-1) + 0.0,
        kwta=kwta(x.view(1, -1), ratio).view(-1) + 0.0,
        k=k_from_ratio(ratio, n),
        ratio=ratio,
        group_size=group_size,
    )


def parse_vector(text: str, *, max_len: int = MAX_VECTOR) -> list[float]:
    """Parse a user-typed vector such as ``"0.3, -1.2 2e-1; 4"``.

    Numbers may be separated by commas, semicolons or white space; brackets are ignored.

    Raises:
        ValueError: Nothing to parse, a token that is not a finite number, or more
            than ``max_len`` numbers. The message is meant for the user.
    """
    tokens = [t for t in re.split(r"[,;\s]+", text.strip().strip("[]()")) if t]
    if not tokens:
        raise ValueError("type at least one number, e.g. 0.5, -1.2, 2")
    if len(tokens) > max_len:
        raise ValueError(f"at most {max_len} numbers, got {len(tokens)}")
    out: list[float] = []
    for tok in tokens:
        try:
            v = float(tok)
        except ValueError:
            raise ValueError(f"{tok!r} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"{tok!r} is not a finite number")
        out.append(v)
    return out


def random_vector(n: int, seed: int = 0) -> list[float]:
    """``n`` standard-normal values rounded to 2 decimals (easy to read and edit), seeded."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_VECTOR:
        raise ValueError(f"n must be an int from 1 to {MAX_VECTOR}, got {n!r}")
    gen = torch.Generator().manual_seed(seed)
    return [round(float(v), 2) for v in torch.randn(n, generator=gen, dtype=torch.float64)]
