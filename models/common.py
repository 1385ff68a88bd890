"""Pieces shared by the architectures."""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: Per-channel mean and std of the CIFAR-10 training set (canonical binary batches).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """Map pixels in [0, 1] to standardised inputs inside the model.

    Keeping this inside the network means attacks work in pixel space, where
    the ε-ball and the [0, 1] box are defined (RobustBench convention).
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        mean: tuple[float, ...] = CIFAR10_MEAN,
        std: tuple[float, ...] = CIFAR10_STD,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std
