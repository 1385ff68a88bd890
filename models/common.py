"""Pieces shared by the architectures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from kwta.nn.registry import create_act

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


def normalize_layer(mean: Sequence[float] | None, std: Sequence[float] | None) -> Normalize:
    """The input normalisation of an architecture (default: CIFAR-10's mean and std)."""
    return Normalize(
        tuple(mean) if mean is not None else CIFAR10_MEAN,
        tuple(std) if std is not None else CIFAR10_STD,
    )


def act_factory(act: str, act_kwargs: dict[str, Any] | None) -> Callable[[], nn.Module]:
    """A maker of activation layers by name (:func:`kwta.create_act`), checked once now."""
    kwargs = dict(act_kwargs or {})
    create_act(act, **kwargs)  # fail fast on a bad name or arguments

    def make() -> nn.Module:
        return create_act(act, **kwargs)

    return make
