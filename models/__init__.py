"""Architectures of the k-WTA Explorer: the paper's CIFAR ResNet-18 and a toy MLP.

All models take inputs in [0, 1] (images) and build every activation by name,
so a k-WTA network is the ReLU network with ``act="kwta"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .mlp import MLP
from .resnet import BasicBlock, ResNet, resnet18

__all__ = ["ARCHITECTURES", "MLP", "BasicBlock", "ResNet", "build_model", "resnet18"]

#: Architecture name → constructor taking keyword arguments only.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "mlp": MLP,
}


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """Build an architecture by name, e.g. ``build_model("resnet18", width=16, act="kwta",
    act_kwargs={"ratio": 0.1})``.

    Raises:
        ValueError: Unknown architecture.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**kwargs)
