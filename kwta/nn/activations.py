"""Activation modules and the name → class registry (Sec. 2.1, App. D.3).

Each module is a thin wrapper around a function in :mod:`kwta.nn.functional`, in
the style of timm's ``layers/activations.py``; networks take an activation by
name through :func:`create_act` instead of having plain/sparse twin classes.
"""

from __future__ import annotations

from torch import Tensor, nn

from kwta.nn import functional as F

__all__ = [
    "KWTA",
    "LWTA",
    "ReLU",
    "get_ratio",
    "set_ratio",
]


class KWTA(nn.Module):
    """k-Winners-Take-All, Eq. 1 (Sec. 2.1).

    Args:
        ratio: Sparsity ratio γ in (0, 1]; ``k = max(1, floor(γ·N))``.
        per_channel: Select winners inside each channel's spatial map instead of
            over all ``C·H·W`` units. The default, ``False``, is the paper's choice.
    """

    def __init__(self, ratio: float = 0.1, *, per_channel: bool = False) -> None:
        super().__init__()
        self.ratio = F.check_ratio(ratio)
        self.per_channel = per_channel

    def forward(self, x: Tensor) -> Tensor:
        return F.kwta(x, self.ratio, per_channel=self.per_channel)

    def mask(self, x: Tensor) -> Tensor:
        """The activation pattern A(x) of Eq. 2 as a boolean mask."""
        return F.kwta_mask(x, self.ratio, per_channel=self.per_channel)

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}" + (", per_channel=True" if self.per_channel else "")


class LWTA(nn.Module):
    """Local winner-take-all over groups of ``group_size`` channels (App. D.3).

    Args:
        group_size: Channels per group; one winner each. ``1/γ`` gives the same
            sparsity as k-WTA-γ.
    """

    def __init__(self, group_size: int = 10) -> None:
        super().__init__()
        if not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"LWTA group size must be a positive int, got {group_size!r}")
        self.group_size = group_size

    def forward(self, x: Tensor) -> Tensor:
        return F.lwta(x, self.group_size)

    def mask(self, x: Tensor) -> Tensor:
        """Boolean mask of the local winners."""
        return F.lwta_mask(x, self.group_size)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}"


class ReLU(nn.ReLU):
    """ReLU, the baseline, with the same ``mask`` method as the WTA modules."""

    def mask(self, x: Tensor) -> Tensor:
        """Units that pass (``x > 0``)."""
        return x > 0


def set_ratio(model: nn.Module, ratio: float) -> int:
    """Set the sparsity ratio of every k-WTA layer of ``model`` in place.

    Used by the incremental fine-tuning schedule (Sec. 2.2). Shared (cached)
    models must be copied first: this mutates ``model``.

    Returns:
        The number of k-WTA layers changed.

    Raises:
        ValueError: ``ratio`` outside (0, 1].
    """
    ratio = F.check_ratio(ratio)
    n = 0
    for module in model.modules():
        if isinstance(module, KWTA):
            module.ratio = ratio
            n += 1
    return n


def get_ratio(model: nn.Module) -> float | None:
    """The sparsity ratio of the model's k-WTA layers, or ``None`` if it has none.

    Raises:
        ValueError: The layers disagree.
    """
    ratios = {m.ratio for m in model.modules() if isinstance(m, KWTA)}
    if not ratios:
        return None
    if len(ratios) > 1:
        raise ValueError(f"k-WTA layers have different ratios: {sorted(ratios)}")
    return ratios.pop()
