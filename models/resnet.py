"""CIFAR ResNet-18 in the form the paper uses (App. D.1, kuangliu/pytorch-cifar).

3×3 stem, no max-pool, four stages of two BasicBlocks, global average pool,
linear head. Every activation is built by name through :func:`kwta.create_act`,
so the ReLU and k-WTA networks are the same class (Sec. 2.1: k-WTA replaces
every ReLU and nothing else).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .common import act_factory, normalize_layer

__all__ = ["BasicBlock", "ResNet", "resnet18"]

ActLayer = Callable[[], nn.Module]


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 projection) shortcut.

    Args:
        in_planes: Input channels.
        planes: Output channels.
        stride: Stride of the first convolution.
        act_layer: Zero-argument factory for the activation module.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, act_layer: ActLayer) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = act_layer()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.act2 = act_layer()

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet taking images in [0, 1]; normalisation happens inside.

    Args:
        num_blocks: Blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        width: Channels of the first stage (64 in the paper); stages use
            ``width·(1, 2, 4, 8)``.
        act: Activation name for :func:`kwta.create_act`.
        act_kwargs: Keyword arguments for the activation (e.g. ``{"ratio": 0.1}``).
        num_classes: Output logits.
        mean: Per-channel input mean of the normalisation (default: CIFAR-10's).
        std: Per-channel input std (default: CIFAR-10's); an imported network keeps its own.
    """

    def __init__(
        self,
        num_blocks: tuple[int, ...] = (2, 2, 2, 2),
        *,
        width: int = 64,
        act: str = "relu",
        act_kwargs: dict[str, Any] | None = None,
        num_classes: int = 10,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        act_layer = act_factory(act, act_kwargs)

        self.normalize = normalize_layer(mean, std)
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.act1 = act_layer()
        stages: list[nn.Module] = []
        in_planes = width
        for i, n in enumerate(num_blocks):
            planes = width * 2**i
            blocks: list[nn.Module] = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, act_layer))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(self.normalize(x))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.pool(out), 1))


def resnet18(
    *,
    width: int = 64,
    act: str = "relu",
    act_kwargs: dict[str, Any] | None = None,
    num_classes: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ResNet:
    """ResNet-18 for 32×32 inputs (the paper's CIFAR-10 model)."""
    return ResNet(
        (2, 2, 2, 2),
        width=width,
        act=act,
        act_kwargs=act_kwargs,
        num_classes=num_classes,
        mean=mean,
        std=std,
    )
