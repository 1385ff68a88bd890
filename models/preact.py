"""Pre-activation ResNet-18 for CIFAR-10 (He et al., ECCV 2016), the network of fast
adversarial training (Wong, Rice & Kolter 2020) and of many RobustBench entries.

The state-dict keys are those of the reference implementations, so their published
checkpoints load (``kwta import``): ``conv1``, ``layer1..4.<i>.{bn1,conv1,bn2,conv2}``, a
``shortcut.0`` convolution where a block changes shape, ``bn`` (the BatchNorm before the
classifier, present in Wong et al.'s and RobustBench's layout, absent in the original
kuangliu layout: ``final_bn``) and ``linear``. Normalisation happens inside (no keys), every
activation is built by name, so ``act="kwta"`` gives the k-WTA variant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .common import act_factory, normalize_layer

__all__ = ["PreActBlock", "PreActResNet", "preact_resnet18"]

ActLayer = Callable[[], nn.Module]

#: Which tensor a block's shortcut convolution reads: the pre-activated input (``"out"``:
#: kuangliu, Wong et al.) or the raw block input (``"x"``: RobustBench's ``PreActBlock``).
Shortcut = Literal["out", "x"]


class PreActBlock(nn.Module):
    """BN → act → conv → BN → act → conv, plus the shortcut."""

    def __init__(
        self, in_planes: int, planes: int, stride: int, act_layer: ActLayer, shortcut: Shortcut
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = act_layer()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = act_layer()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut_from = shortcut
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        if hasattr(self, "shortcut"):
            skip = self.shortcut(out if self.shortcut_from == "out" else x)
        else:
            skip = x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + skip


class PreActResNet(nn.Module):
    """CIFAR pre-activation ResNet taking images in [0, 1].

    Args:
        num_blocks: Blocks per stage (``(2, 2, 2, 2)``: PreAct ResNet-18).
        width: Channels of the first stage (64 as published); stages ``width·(1, 2, 4, 8)``.
        act: Activation name (:func:`kwta.create_act`).
        act_kwargs: Its keyword arguments.
        num_classes: Output logits.
        final_bn: The BatchNorm + activation before the classifier (key ``bn``).
        shortcut: What a shape-changing shortcut reads (:data:`Shortcut`).
        mean: Input normalisation mean (default CIFAR-10's; RobustBench models: 0).
        std: Input normalisation std (default CIFAR-10's; RobustBench models: 1).
    """

    def __init__(
        self,
        num_blocks: tuple[int, ...] = (2, 2, 2, 2),
        *,
        width: int = 64,
        act: str = "relu",
        act_kwargs: dict[str, Any] | None = None,
        num_classes: int = 10,
        final_bn: bool = True,
        shortcut: Shortcut = "out",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if shortcut not in ("out", "x"):
            raise ValueError(f"shortcut must be 'out' or 'x', got {shortcut!r}")
        act_layer = act_factory(act, act_kwargs)

        self.normalize = normalize_layer(mean, std)
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        stages: list[nn.Module] = []
        in_planes = width
        for i, n in enumerate(num_blocks):
            planes = width * 2**i
            blocks: list[nn.Module] = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(PreActBlock(in_planes, planes, stride, act_layer, shortcut))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.final_bn = final_bn
        if final_bn:
            self.bn = nn.BatchNorm2d(in_planes)
            self.act = act_layer()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.normalize(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        if self.final_bn:
            out = self.act(self.bn(out))
        return self.linear(torch.flatten(self.pool(out), 1))


def preact_resnet18(**kwargs: Any) -> PreActResNet:
    """PreAct ResNet-18 for 32×32 inputs (keyword arguments of :class:`PreActResNet`)."""
    return PreActResNet((2, 2, 2, 2), **kwargs)
