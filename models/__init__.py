"""Architectures of the k-WTA Explorer: the paper's CIFAR ResNet-18, a toy MLP, and the
architectures researchers publish CIFAR-10 robustness checkpoints in (PreAct ResNet-18,
WideResNet), with their reference state-dict keys so that those checkpoints import.

All models take inputs in [0, 1] (images) and build every activation by name,
so a k-WTA network is the ReLU network with ``act="kwta"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .mlp import MLP
from .preact import PreActResNet, preact_resnet18
from .resnet import BasicBlock, ResNet, resnet18
from .timm_models import is_timm_arch, timm_model
from .wide_resnet import WideResNet, wide_resnet

__all__ = [
    "ARCHITECTURES",
    "MLP",
    "BasicBlock",
    "PreActResNet",
    "ResNet",
    "WideResNet",
    "build_model",
    "known_architecture",
    "preact_resnet18",
    "resnet18",
    "wide_resnet",
]

#: Architecture name → constructor taking keyword arguments only.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": resnet18,
    "mlp": MLP,
    "preact_resnet18": preact_resnet18,
    "wide_resnet": wide_resnet,
}


def known_architecture(arch: str) -> bool:
    """Whether ``arch`` is a registered name or ``"timm:NAME"`` (checked when it is built)."""
    return arch in ARCHITECTURES or is_timm_arch(arch)


def build_model(arch: str, **kwargs: Any) -> nn.Module:
    """Build an architecture by name, e.g. ``build_model("resnet18", width=16, act="kwta",
    act_kwargs={"ratio": 0.1})``, or any timm model as ``"timm:NAME"`` when timm is installed.

    Raises:
        ValueError: Unknown architecture (or timm missing, or no such timm model).
    """
    if is_timm_arch(arch):
        return timm_model(arch, **kwargs)
    if arch not in ARCHITECTURES:
        known = sorted(ARCHITECTURES)
        raise ValueError(f"unknown architecture {arch!r}; choose from {known} or timm:NAME")
    return ARCHITECTURES[arch](**kwargs)
