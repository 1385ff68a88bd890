"""A small fully connected network for the 1-D toy fit (Fig. 1)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from kwta.nn.registry import create_act

__all__ = ["MLP"]


class MLP(nn.Module):
    """``in_features → width → … → out_features`` with an activation by name.

    Args:
        in_features: Input size (1 for the toy fit).
        out_features: Output size.
        width: Hidden units per layer.
        depth: Number of hidden layers.
        act: Activation name for :func:`kwta.create_act`.
        act_kwargs: Keyword arguments for the activation.
    """

    def __init__(
        self,
        in_features: int = 1,
        out_features: int = 1,
        *,
        width: int = 64,
        depth: int = 2,
        act: str = "relu",
        act_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        kwargs = dict(act_kwargs or {})
        layers: list[nn.Module] = []
        prev = in_features
        for _ in range(depth):
            layers += [nn.Linear(prev, width), create_act(act, **kwargs)]
            prev = width
        layers.append(nn.Linear(prev, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
