"""Theorem 1 on a single random layer: the chance that a small perturbation
changes the activation pattern, as a function of the layer width (Sec. 3, App. C.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from kwta.analysis._common import Callback, to_plain
from kwta.nn.functional import check_ratio, k_from_ratio, kwta_mask

__all__ = [
    "Theorem1Sweep",
    "theorem1_width_sweep",
]


@dataclass(frozen=True, eq=False)
class Theorem1Sweep:
    """Chance that one random k-WTA layer's pattern changes, by width (Sec. 3, Theorem 1).

    Attributes:
        widths: ``(W,)`` layer widths ``l``.
        betas: ``(Bt,)`` relative perpendicular perturbation sizes ``β = d²(x, x')/‖x‖²``.
        change_prob: ``(W, Bt)`` share of trials with ``A(Wx) ≠ A(Wx')``.
        changed_fraction: ``(W, Bt)`` mean share of the ``k`` winners replaced.
        ratio: Sparsity ratio γ.
        in_dim: Input dimension ``m``.
        n_trials: Trials per width (fresh ``W``, ``x`` and perpendicular direction each).
        seed: Seed.
    """

    widths: Tensor
    betas: Tensor
    change_prob: Tensor
    changed_fraction: Tensor
    ratio: float
    in_dim: int
    n_trials: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers."""
        return {f: to_plain(getattr(self, f)) for f in self.__dataclass_fields__}


def theorem1_width_sweep(
    widths: Sequence[int] = (16, 64, 256, 1024, 4096),
    *,
    ratio: float = 0.1,
    in_dim: int = 16,
    betas: Sequence[float] = (1e-6, 1e-4, 1e-2),
    n_trials: int = 200,
    seed: int = 0,
    device: torch.device | str | None = None,
    callback: Callback | None = None,
) -> Theorem1Sweep:
    """Theorem 1 on one random layer: wider k-WTA layers change pattern under smaller perturbations.

    As in Sec. 3 and App. C.1: ``W ∈ R^{l×m}`` has i.i.d. ``N(0, 1/l)`` entries and
    ``b = 0``. Each trial draws ``W``, an input ``x ~ N(0, I_m)`` and a unit vector
    ``x⊥ ⟂ x``, and sets ``x' = x + d·x⊥`` with ``d = sqrt(β)·‖x‖``, so that
    ``d²(x, x')/‖x‖² = β`` (the theorem's perpendicular distance; rescaling ``x'``
    would not change its pattern since ``b = 0``). It records whether the k-WTA
    pattern ``A(Wx)``, ``k = ⌊γl⌋``, differs from ``A(Wx')``. Theorem 1 says that for
    ``l ≳ (m/(γβ))·log(m/(γβ))`` the pattern changes with high probability, so at a
    fixed β the change probability grows with ``l``.

    Args:
        widths: Layer widths ``l`` (each ≥ 1).
        ratio: Sparsity ratio γ in (0, 1].
        in_dim: Input dimension ``m`` (≥ 2, so that a perpendicular direction exists).
        betas: Relative perpendicular sizes β > 0.
        n_trials: Trials per width.
        seed: Seed.
        device: Where to compute (default CPU).
        callback: ``callback(done, total)`` over the widths.

    Returns:
        A :class:`Theorem1Sweep`.

    Raises:
        ValueError: Bad widths, ratio, dimension, betas or trial count.
    """
    check_ratio(ratio)
    ws = list(widths)
    if not ws or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in ws):
        raise ValueError(f"widths must be positive ints, got {ws}")
    bs = [float(b) for b in betas]
    if not bs or any(not math.isfinite(b) or b <= 0 for b in bs):
        raise ValueError(f"betas must be finite values > 0, got {bs}")
    if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 2:
        raise ValueError(f"in_dim must be an int >= 2, got {in_dim!r}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive int, got {n_trials!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(seed)
    root_beta = torch.tensor(bs, dtype=torch.float64).sqrt()
    prob = torch.zeros(len(ws), len(bs), dtype=torch.float64)
    frac = torch.zeros(len(ws), len(bs), dtype=torch.float64)
    for wi, width in enumerate(ws):
        k = k_from_ratio(ratio, width)
        chunk = max(1, min(n_trials, 2_000_000 // (width * in_dim)))
        for start in range(0, n_trials, chunk):
            t = min(chunk, n_trials - start)
            w = torch.randn(t, width, in_dim, generator=gen, dtype=torch.float64) / math.sqrt(width)
            x = torch.randn(t, in_dim, generator=gen, dtype=torch.float64)
            r = torch.randn(t, in_dim, generator=gen, dtype=torch.float64)
            xn = x.norm(dim=1, keepdim=True)
            xhat = x / xn
            perp = r - (r * xhat).sum(dim=1, keepdim=True) * xhat
            perp = perp / perp.norm(dim=1, keepdim=True)
            xp = x[:, None, :] + (root_beta[None, :, None] * xn[:, :, None]) * perp[:, None, :]
            w, x, xp = w.to(dev), x.to(dev), xp.to(dev)
            a = kwta_mask(torch.einsum("tlm,tm->tl", w, x), ratio)
            ap = kwta_mask(torch.einsum("tlm,tbm->tbl", w, xp).reshape(-1, width), ratio)
            diff = (a[:, None, :] ^ ap.view(t, len(bs), width)).sum(dim=2).double().cpu()
            prob[wi] += (diff > 0).double().sum(dim=0)
            frac[wi] += (diff / (2 * k)).sum(dim=0)
        if callback is not None:
            callback(wi + 1, len(ws))
    return Theorem1Sweep(
        widths=torch.tensor(ws, dtype=torch.long),
        betas=torch.tensor(bs, dtype=torch.float64),
        change_prob=prob / n_trials,
        changed_fraction=frac / n_trials,
        ratio=float(ratio),
        in_dim=in_dim,
        n_trials=n_trials,
        seed=seed,
    )
