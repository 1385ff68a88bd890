"""WideResNet for CIFAR-10 (Zagoruyko & Komodakis, BMVC 2016): WRN-28-10 and WRN-34-10 are
the most common architectures of RobustBench's CIFAR-10 L∞ board (TRADES, MART, AWP, …).

The state-dict keys are those of the TRADES/RobustBench implementation, so their published
checkpoints load (``kwta import``): ``conv1``; ``block1..3.layer.<i>.{bn1,conv1,bn2,conv2}``
with ``convShortcut`` where a block changes width; ``sub_block1`` for the checkpoints that
carry that unused block; ``bn1`` and ``fc`` at the end. Normalisation happens inside (no
keys), every activation is built by name (``act="kwta"`` gives the k-WTA variant).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .common import act_factory, normalize_layer

__all__ = ["WideBlock", "WideResNet", "wide_resnet"]

ActLayer = Callable[[], nn.Module]


class WideBlock(nn.Module):
    """BN → act → conv → BN → act → conv; a width change takes its shortcut from the
    activated input through a 1×1 convolution (``convShortcut``)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, act_layer: ActLayer) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = act_layer()
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = act_layer()
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = (
            None
            if self.equal_in_out
            else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(pre))))
        if self.convShortcut is None:
            return x + out
        return self.convShortcut(pre) + out


class _Stage(nn.Module):
    """``n`` blocks under the reference's ``layer`` name."""

    def __init__(
        self, n: int, in_planes: int, out_planes: int, stride: int, act_layer: ActLayer
    ) -> None:
        super().__init__()
        blocks = [WideBlock(in_planes, out_planes, stride, act_layer)]
        blocks += [WideBlock(out_planes, out_planes, 1, act_layer) for _ in range(n - 1)]
        self.layer = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """CIFAR WideResNet-``depth``-``widen_factor`` taking images in [0, 1].

    Args:
        depth: ``6n + 4`` (28, 34, 70, …).
        widen_factor: The width multiplier (10 as published).
        act: Activation name (:func:`kwta.create_act`).
        act_kwargs: Its keyword arguments.
        num_classes: Output logits.
        sub_block1: Carry the unused ``sub_block1`` of some TRADES checkpoints (so they load).
        bias_last: A bias in the classifier.
        mean: Input normalisation mean (default CIFAR-10's; RobustBench models: 0).
        std: Input normalisation std (default CIFAR-10's; RobustBench models: 1).
    """

    def __init__(
        self,
        *,
        depth: int = 28,
        widen_factor: int = 10,
        act: str = "relu",
        act_kwargs: dict[str, Any] | None = None,
        num_classes: int = 10,
        sub_block1: bool = False,
        bias_last: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 (28, 34, …), got {depth}")
        n = (depth - 4) // 6
        act_layer = act_factory(act, act_kwargs)

        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.normalize = normalize_layer(mean, std)
        self.conv1 = nn.Conv2d(3, channels[0], 3, stride=1, padding=1, bias=False)
        self.block1 = _Stage(n, channels[0], channels[1], 1, act_layer)
        if sub_block1:
            self.sub_block1 = _Stage(n, channels[0], channels[1], 1, act_layer)
        self.block2 = _Stage(n, channels[1], channels[2], 2, act_layer)
        self.block3 = _Stage(n, channels[2], channels[3], 2, act_layer)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.relu = act_layer()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels[3], num_classes, bias=bias_last)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.normalize(x))
        out = self.block3(self.block2(self.block1(out)))
        out = self.relu(self.bn1(out))
        return self.fc(torch.flatten(self.pool(out), 1))


def wide_resnet(**kwargs: Any) -> WideResNet:
    """A CIFAR WideResNet (keyword arguments of :class:`WideResNet`; WRN-28-10 by default)."""
    return WideResNet(**kwargs)
