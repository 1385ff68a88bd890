"""Activation patterns of one layer for the app (Sec. 3): the winner map and
how the pattern moves with ε across γ.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from kwta import paper
from kwta.analysis.patterns import (
    PatternChange,
    activation_patterns,
    masks_overlap,
    overlap_summary,
    pattern_change,
)
from kwta.nn.activations import KWTA, set_ratio
from kwta.nn.functional import check_ratio

__all__ = [
    "DEFAULT_RATIOS",
    "EPS_GRID",
    "OVERLAP_IMAGES",
    "OverlapProfile",
    "WinnerMap",
    "activation_layers",
    "change_curves",
    "curve_records",
    "other_ratios",
    "overlap_profile",
    "pattern_change_by_ratio",
    "pattern_change_sweep",
    "patterns_export",
    "winner_map",
]


#: Other γ the page evaluates a k-WTA model at, on the same weights, by default.
DEFAULT_RATIOS: tuple[float, ...] = (0.05, 0.2, 0.5)
#: The pattern-change curves' ε values: 10 log-spaced from 1e-5 to the paper's ε.
EPS_GRID: tuple[float, ...] = tuple(float(v) for v in np.geomspace(1e-5, paper.EPS, 10))


def activation_layers(model: nn.Module, x: Tensor) -> dict[str, tuple[int, ...]]:
    """Names (forward order) and per-sample shapes of the model's activation layers.

    Args:
        model: Network whose activations have a ``mask`` method; not modified.
        x: One input (or a batch) to run.
    """
    return {k: tuple(v.shape[1:]) for k, v in activation_patterns(model, x).items()}


@dataclass(frozen=True, eq=False)
class WinnerMap:
    """One layer's activation pattern A(x) (Eq. 2) and how a perturbation moves it.

    Attributes:
        layer: Layer name.
        shape: Per-sample shape of the layer input, e.g. ``(C, H, W)``.
        clean: ``(C, H·W)`` (or ``(1, N)`` for flat layers) bool: winners on ``x``.
        perturbed: Same for ``x' = clamp(x + eps·s, 0, 1)``, ``s`` random ±1.
        eps: Perturbation size.
        seed: Seed of ``s``.
    """

    layer: str
    shape: tuple[int, ...]
    clean: Tensor
    perturbed: Tensor
    eps: float
    seed: int

    @property
    def n_units(self) -> int:
        """Units in the layer."""
        return int(self.clean.numel())

    @property
    def n_winners(self) -> int:
        """Winners (active units) on the clean input."""
        return int(self.clean.sum())

    @property
    def n_changed(self) -> int:
        """Units that entered or left the pattern: ``|A(x) Δ A(x')|``."""
        return int((self.clean ^ self.perturbed).sum())

    @property
    def changed_fraction(self) -> float:
        """``|A Δ A'| / (|A| + |A'|)``: the share of winners replaced (0 when both are empty)."""
        tot = int(self.clean.sum()) + int(self.perturbed.sum())
        return self.n_changed / tot if tot else 0.0

    def spatial(self, which: Literal["clean", "perturbed", "changed"] = "clean") -> Tensor:
        """Share of channels winning (or changing) per position, ``(H, W)``; ``(1, N)`` if flat."""
        m = {
            "clean": self.clean,
            "perturbed": self.perturbed,
            "changed": self.clean ^ self.perturbed,
        }[which]
        hw = self.shape[1:] if len(self.shape) == 3 else (1, m.shape[1])
        return m.double().mean(dim=0).view(*hw)

    def per_channel(self) -> Tensor:
        """``(C,)`` winners per channel on the clean input."""
        return self.clean.sum(dim=1)


def winner_map(
    model: nn.Module, x: Tensor, layer: str, *, eps: float = 0.0, seed: int = 0
) -> WinnerMap:
    """The winners of one layer on ``x`` and on ``x`` plus a random sign perturbation.

    Args:
        model: Network with activation layers that have a ``mask`` method; not modified.
        x: One image ``(3, H, W)`` or ``(1, 3, H, W)`` in [0, 1].
        layer: A name from :func:`activation_layers`.
        eps: Size of the random sign perturbation ``s ∈ {±1}^d`` (pixel units, ≥ 0).
        seed: Seed of ``s``.

    Raises:
        KeyError: Unknown layer (the message lists the names).
        ValueError: Negative or non-finite ``eps``.
    """
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite value >= 0, got {eps!r}")
    x1 = x.unsqueeze(0) if x.dim() == 3 else x
    clean = activation_patterns(model, x1)
    if layer not in clean:
        raise KeyError(f"no activation layer {layer!r}; layers: {list(clean)}")
    gen = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, tuple(x1.shape), generator=gen).float().mul_(2).sub_(1)
    xp = (x1.detach().cpu().float() + eps * sign).clamp(0.0, 1.0).to(x1.device)
    pert = activation_patterns(model, xp)
    a, b = clean[layer][0].cpu(), pert[layer][0].cpu()
    shape = tuple(a.shape)
    rows = shape[0] if len(shape) == 3 else 1
    return WinnerMap(
        layer=layer,
        shape=shape,
        clean=a.reshape(rows, -1),
        perturbed=b.reshape(rows, -1),
        eps=float(eps),
        seed=seed,
    )


def pattern_change_by_ratio(
    model: nn.Module,
    x: Tensor,
    eps_values: Sequence[float],
    ratios: Sequence[float],
    *,
    n_dirs: int = 2,
    seed: int = 0,
    callback: Callable[[int, int], None] | None = None,
) -> dict[float, PatternChange]:
    """:func:`kwta.analysis.patterns.pattern_change` of one k-WTA network re-evaluated at several γ.

    A private deep copy of the model gets each γ in turn (:func:`kwta.set_ratio`,
    without retraining, as in :func:`kwta.analysis.weights.gamma_sweep`); the model passed
    in keeps its own ratio. The same random directions (``seed``) are used for
    every γ.

    Args:
        model: Network with k-WTA layers; not modified.
        x: Batch or one image in [0, 1].
        eps_values: Perturbation sizes ≥ 0.
        ratios: Sparsity ratios γ in (0, 1].
        n_dirs: Random sign directions per input.
        seed: Seed of the directions.
        callback: ``callback(done, total)`` over the ratios.

    Returns:
        γ → :class:`kwta.analysis.patterns.PatternChange`, in the order given.

    Raises:
        ValueError: No ratios, a ratio outside (0, 1], or no k-WTA layer.
    """
    rs = [check_ratio(r) for r in ratios]
    if not rs:
        raise ValueError("ratios must not be empty")
    if not any(isinstance(m, KWTA) for m in model.modules()):
        raise ValueError("the model has no k-WTA layers to set a ratio on")
    net = copy.deepcopy(model).eval()
    out: dict[float, PatternChange] = {}
    for i, r in enumerate(rs):
        set_ratio(net, r)
        out[r] = pattern_change(net, x, eps_values, n_dirs=n_dirs, seed=seed)
        if callback is not None:
            callback(i + 1, len(rs))
    return out


#: Test images (class-balanced) whose patterns the Theorem 2 view compares pairwise.
OVERLAP_IMAGES = 32


@dataclass(frozen=True)
class OverlapProfile:
    """How much the activation patterns of *different* inputs share, layer by layer (Theorem 2).

    Theorem 2 (Sec. 3, "Why is the k-WTA network trainable?"): in a wide k-WTA layer
    the patterns of different inputs barely overlap — no more than random sets of
    the same size would — so each input trains its own small set of weights and
    the discontinuities a single input meets do not hinder gradient descent.

    Attributes:
        layers: Activation layers, in forward order.
        overlap: Mean over pairs of different inputs of
            ``|A(xᵢ) ∩ A(xⱼ)| / sqrt(|A(xᵢ)|·|A(xⱼ)|)`` (:func:`pattern_overlap`).
        chance: The same for random patterns of the observed sizes: the layer's mean
            active share ``|A| / N`` (``γ`` for k-WTA).
        n_images: Inputs compared.
    """

    layers: tuple[str, ...]
    overlap: tuple[float, ...]
    chance: tuple[float, ...]
    n_images: int

    @property
    def mean_overlap(self) -> float:
        """Overlap averaged over layers."""
        return sum(self.overlap) / len(self.overlap) if self.overlap else math.nan

    @property
    def mean_chance(self) -> float:
        """Chance level averaged over layers."""
        return sum(self.chance) / len(self.chance) if self.chance else math.nan

    def to_dict(self) -> dict[str, object]:
        """Plain values (for JSON downloads)."""
        return {
            "layers": list(self.layers),
            "overlap": list(self.overlap),
            "chance": list(self.chance),
            "n_images": self.n_images,
        }


def overlap_profile(model: nn.Module, x: Tensor) -> OverlapProfile:
    """Pairwise pattern overlap of a batch of different inputs, per layer (Theorem 2).

    Args:
        model: Network whose activations have a ``mask`` method; not modified.
        x: ``(B, 3, H, W)`` different inputs, ``B ≥ 2``.

    Raises:
        ValueError: Fewer than two inputs.
    """
    if x.dim() != 4 or x.shape[0] < 2:
        raise ValueError(f"need a batch of at least two inputs, got shape {tuple(x.shape)}")
    masks = activation_patterns(model, x)  # one forward pass serves both measures
    summary = overlap_summary(masks_overlap(masks))
    share = {k: float(m.reshape(m.shape[0], -1).double().mean()) for k, m in masks.items()}
    layers = tuple(summary)
    return OverlapProfile(
        layers=layers,
        overlap=tuple(summary[k] for k in layers),
        chance=tuple(share[k] for k in layers),
        n_images=int(x.shape[0]),
    )


def pattern_change_sweep(
    model: nn.Module,
    x: Tensor,
    ratios: Sequence[float] = (),
    *,
    n_dirs: int,
    seed: int,
    eps_values: Sequence[float] = EPS_GRID,
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, PatternChange]:
    """Pattern change against ε for the model as trained, then at each γ of ``ratios``.

    The Activation patterns page's curves (Sec. 3, Theorem 1): ``"as trained"`` from
    :func:`kwta.analysis.patterns.pattern_change`, then ``"γ = …"`` per ratio from
    :func:`pattern_change_by_ratio` (on a private copy; ``model`` is never changed).

    Args:
        model: Network; not modified.
        x: One image or a batch in [0, 1].
        ratios: Other sparsity ratios to evaluate on the same weights (k-WTA only).
        n_dirs: Random sign directions per ε.
        seed: Seed of the directions.
        eps_values: Perturbation sizes.
        callback: ``callback(done, 1 + len(ratios))``: one unit per curve.
    """
    total = 1 + len(ratios)
    out = {"as trained": pattern_change(model, x, eps_values, n_dirs=n_dirs, seed=seed)}
    if callback is not None:
        callback(1, total)
    if ratios:

        def step(done: int, _total: int) -> None:
            if callback is not None:
                callback(1 + done, total)

        by_ratio = pattern_change_by_ratio(
            model, x, eps_values, ratios, n_dirs=n_dirs, seed=seed, callback=step
        )
        out.update({f"γ = {r:g}": pc for r, pc in by_ratio.items()})
    return out


def other_ratios(chosen: Sequence[float], own: float | None) -> tuple[float, ...]:
    """The γ to evaluate besides the model's own, sorted (none for a model without k-WTA):
    the own γ is the "as trained" curve already."""
    if own is None:
        return ()
    return tuple(sorted(float(g) for g in chosen if abs(float(g) - own) > 1e-9))


def _curve(pc: PatternChange, layer: str, scope: str) -> list[float]:
    if scope == "layer" and layer in pc.layers:
        return pc.changed_fraction[:, pc.layers.index(layer)].tolist()
    return pc.mean_changed_fraction.tolist()


def change_curves(
    changes: Mapping[str, PatternChange],
    *,
    own_label: str,
    layer: str,
    scope: Literal["layer", "mean"],
    baseline: PatternChange | None = None,
    baseline_name: str = "",
) -> dict[str, tuple[list[float], list[float]]]:
    """The pattern-change curves as drawn: label → (ε values, changed share) over
    :data:`EPS_GRID`, for the chosen ``layer`` or the mean over layers (``scope``).

    Args:
        changes: :func:`pattern_change_sweep`'s result: ``"as trained"`` and each other γ.
        own_label: The label of the ``"as trained"`` curve.
        layer: The layer drawn when ``scope`` is ``"layer"``.
        scope: ``"layer"`` or ``"mean"``.
        baseline: A ReLU model's change (``"as trained"``), if one is compared; a ReLU
            network without the layer is drawn as its mean, and its label says so.
        baseline_name: The baseline model's name.
    """
    eps = list(EPS_GRID)
    curves = {own_label: (eps, _curve(changes["as trained"], layer, scope))}
    for key, pc in changes.items():
        if key != "as trained":
            curves[f"k-WTA {key} (same weights)"] = (eps, _curve(pc, layer, scope))
    if baseline is not None:
        has_layer = layer in baseline.layers
        mean_only = "" if has_layer or scope == "mean" else " (mean)"
        curves[f"ReLU baseline {baseline_name}{mean_only}"] = (
            eps,
            _curve(baseline, layer if has_layer else "", scope),
        )
    return curves


def curve_records(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
) -> list[dict[str, Any]]:
    """:func:`change_curves` as one record per curve and ε (for a CSV)."""
    return [
        {"curve": c, "eps": e, "changed_share": f}
        for c, (es, fs) in curves.items()
        for e, f in zip(es, fs, strict=True)
    ]


def patterns_export(
    wm: WinnerMap,
    *,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    changes: Mapping[str, PatternChange],
    profiles: Mapping[str, OverlapProfile],
) -> dict[str, Any]:
    """The Activation patterns page's results as one JSON-able dict: the winner map (clean,
    perturbed, changed; per spatial position), the curves as drawn, the pattern changes and
    the overlap profiles behind them."""
    return {
        "layer": wm.layer,
        "eps_winner_map": wm.eps,
        "curves": {k: {"eps": list(v[0]), "changed_share": list(v[1])} for k, v in curves.items()},
        "pattern_changes": {k: v.to_dict() for k, v in changes.items()},
        "pattern_overlap": {k: v.to_dict() for k, v in profiles.items()},
        "winner_map": {w: wm.spatial(w).tolist() for w in ("clean", "perturbed", "changed")},
    }
