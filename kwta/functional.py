"""Winner-take-all activations as plain functions.

Implements Eq. 1 of Xiao, Zhong, Zheng, "Enhancing Adversarial Defense by
k-Winners-Take-All" (ICLR 2020), Sec. 2.1, and the local winner-take-all (LWTA)
baseline of App. D.3. The modules in :mod:`kwta.activations` are thin wrappers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["k_from_ratio", "kwta", "kwta_mask", "kwta_reference", "lwta", "lwta_mask"]


def k_from_ratio(ratio: float, n: int) -> int:
    """Number of winners ``k = max(1, floor(ratio * n))`` (Sec. 2.1).

    A tiny tolerance keeps ``floor`` from rounding products such as
    ``0.29 * 100 = 28.999999999999996`` down by one.

    Args:
        ratio: Sparsity ratio γ in (0, 1].
        n: Number of units the winners are drawn from.

    Raises:
        ValueError: If ``ratio`` is outside (0, 1].
    """
    check_ratio(ratio)
    return max(1, min(n, math.floor(ratio * n + 1e-9)))


def check_ratio(ratio: float) -> float:
    """Return ``ratio`` if it is a valid sparsity ratio, else raise ``ValueError``."""
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool):
        raise ValueError(f"sparsity ratio must be a number in (0, 1], got {ratio!r}")
    if not 0.0 < float(ratio) <= 1.0 or math.isnan(ratio):
        raise ValueError(f"sparsity ratio must be in (0, 1], got {ratio!r}")
    return float(ratio)


def _flat_mask(flat: Tensor, k: int) -> Tensor:
    """Boolean mask of exactly ``k`` winners in each row of a 2-D tensor.

    The threshold is the k-th largest value of each row, found by an unsorted
    top-k; it is broadcast, never materialised at full size. Ties at the
    threshold are broken in favour of the lower index (Sec. 2.1), which needs
    a cumulative count only for rows that actually have surplus ties.
    """
    n = flat.shape[1]
    if k >= n:
        return torch.ones_like(flat, dtype=torch.bool)
    with torch.no_grad():
        if k <= n // 2:
            thresh = flat.topk(k, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
        else:  # the k-th largest is the (n-k+1)-th smallest: select the smaller side
            thresh = flat.topk(n - k + 1, dim=1, largest=False, sorted=False).values.amax(
                dim=1, keepdim=True
            )
        mask = flat >= thresh
        surplus = mask.sum(dim=1) - k
        if bool((surplus > 0).any()):
            rows = (surplus > 0).nonzero().squeeze(1)
            sub = flat[rows]
            sub_t = thresh[rows]
            tied = sub == sub_t
            # Keep the first (k - #strictly greater) tied entries, in flat-index order.
            need = k - (sub > sub_t).sum(dim=1, keepdim=True)
            keep_tied = tied & (tied.cumsum(dim=1) <= need)
            mask[rows] = (sub > sub_t) | keep_tied
    return mask


def kwta_mask(x: Tensor, ratio: float, *, per_channel: bool = False) -> Tensor:
    """Boolean mask of the k-WTA winners of ``x`` (the activation pattern, Sec. 3, Eq. 2).

    Args:
        x: Input of shape ``(B, N)`` or ``(B, C, *spatial)``.
        ratio: Sparsity ratio γ in (0, 1]; ``k = max(1, floor(γ·N))``.
        per_channel: If ``True``, select winners inside each channel's spatial
            map (``N = H·W``) instead of over all non-batch dims (``N = C·H·W``,
            the paper's choice).

    Returns:
        A ``bool`` tensor shaped like ``x`` with exactly ``k`` ``True`` entries
        per sample (per channel in per-channel mode).
    """
    if x.dim() < 2:
        raise ValueError(f"k-WTA needs a batch dimension; got shape {tuple(x.shape)}")
    if per_channel:
        if x.dim() < 3:
            raise ValueError("per-channel k-WTA needs an input of shape (B, C, H, W)")
        flat = x.reshape(x.shape[0] * x.shape[1], -1)
    else:
        flat = x.reshape(x.shape[0], -1)
    k = k_from_ratio(ratio, flat.shape[1])
    return _flat_mask(flat, k).view(x.shape)


def kwta(x: Tensor, ratio: float, *, per_channel: bool = False) -> Tensor:
    """k-Winners-Take-All activation, Eq. 1 (Sec. 2.1).

    Keeps the ``k = max(1, floor(ratio·N))`` largest values of every sample and
    sets the rest to zero. Exactly ``k`` values survive: ties at the k-th value
    go to the lower flat index. Winners keep their sign (k-WTA is not ReLU).
    The gradient flows to the winners only.

    Args:
        x: Input of shape ``(B, N)`` or ``(B, C, *spatial)``.
        ratio: Sparsity ratio γ in (0, 1].
        per_channel: Winners inside each channel instead of over ``C·H·W``.

    Returns:
        Tensor shaped like ``x``.
    """
    return x * kwta_mask(x, ratio, per_channel=per_channel)


def kwta_reference(x: Tensor, ratio: float) -> Tensor:
    """The authors' formulation, kept as the baseline for benchmarks only.

    Sorted ``topk``, the last value as threshold, ``repeat`` to full size,
    compare ``>=`` and multiply. It keeps *every* value tied with the k-th, so
    more than ``k`` units can survive. Do not use it in models.
    """
    flat = x.reshape(x.shape[0], -1)
    k = k_from_ratio(ratio, flat.shape[1])
    topval = flat.topk(k, dim=1)[0][:, -1]
    topval = topval.repeat(flat.shape[1], 1).permute(1, 0).reshape(x.shape)
    comp = (x >= topval).to(x)
    return comp * x


def lwta_mask(x: Tensor, group_size: int) -> Tensor:
    """Boolean mask of the local winners: one per group of ``group_size`` channels.

    Groups are consecutive channels at each spatial position (consecutive
    features for ``(B, N)`` inputs); a last, shorter group takes the remainder.
    Ties go to the lower channel index.
    """
    if group_size < 1:
        raise ValueError(f"LWTA group size must be >= 1, got {group_size}")
    if x.dim() < 2:
        raise ValueError(f"LWTA needs a batch dimension; got shape {tuple(x.shape)}")
    c = x.shape[1]
    groups = -(-c // group_size)
    pad = groups * group_size - c
    with torch.no_grad():
        xp = x
        if pad:
            filler = torch.full(
                (x.shape[0], pad, *x.shape[2:]), float("-inf"), dtype=x.dtype, device=x.device
            )
            xp = torch.cat([x, filler], dim=1)
        g = xp.reshape(x.shape[0], groups, group_size, *x.shape[2:])
        win = g.argmax(dim=2, keepdim=True)
        mask = torch.zeros_like(g, dtype=torch.bool).scatter_(2, win, True)
        mask = mask.reshape(xp.shape)[:, :c]
    return mask


def lwta(x: Tensor, group_size: int) -> Tensor:
    """Local winner-take-all (Srivastava et al. 2013; the paper's App. D.3 baseline).

    In each group of ``group_size`` consecutive channels, the largest value is
    kept and the others are zeroed. ``group_size = 1/γ`` matches k-WTA-γ's
    sparsity, as in the paper's Table 2.
    """
    return x * lwta_mask(x, group_size)
