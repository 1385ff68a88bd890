"""Activation patterns A(x) (Sec. 3, Eq. 2): how they change under tiny input
perturbations (Theorem 1) and how much they overlap between inputs (Theorem 2).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kwta.analysis._common import Callback, as_batch, device_of, eval_view, rademacher, to_plain

__all__ = [
    "PatternChange",
    "activation_patterns",
    "changed_fraction",
    "masks_overlap",
    "overlap_summary",
    "pattern_change",
    "pattern_overlap",
]


def _has_mask(module: nn.Module) -> bool:
    return callable(getattr(module, "mask", None))


@contextmanager
def _capture_masks(model: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Forward pre-hooks recording ``module.mask(input)`` for every activation layer.

    Only forwards run by the calling thread are recorded (a model shared with
    other threads may run their forwards meanwhile). A module called more than
    once per forward gets keys ``name``, ``name#2``, … The hooks are removed on exit.
    """
    masks: dict[str, Tensor] = {}
    owner = threading.get_ident()
    handles = []

    def make_hook(name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            if threading.get_ident() != owner:
                return
            key, n = name, 1
            while key in masks:
                n += 1
                key = f"{name}#{n}"
            masks[key] = module.mask(inputs[0]).detach()  # type: ignore[operator]

        return hook

    try:
        for name, module in model.named_modules():
            if _has_mask(module):
                handles.append(module.register_forward_pre_hook(make_hook(name or "<root>")))
        yield masks
    finally:
        for h in handles:
            h.remove()


def _patterns(net: nn.Module, x: Tensor) -> dict[str, Tensor]:
    with _capture_masks(net) as masks, torch.no_grad():
        net(x)
    return dict(masks)


def activation_patterns(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """The activation pattern A(x) of every activation layer (Sec. 3, Eq. 2).

    Layers are the modules with a ``mask`` method (:class:`kwta.KWTA`,
    :class:`kwta.LWTA`, :class:`kwta.ReLU`); each mask is ``module.mask`` applied
    to the layer's input, captured by a temporary forward pre-hook.

    Args:
        model: Network; not modified (the hooks are removed before returning).
        x: Batch ``(B, …)``, or one image ``(C, H, W)``.

    Returns:
        Layer name → boolean mask shaped like the layer input (on the model's
        device), in forward order. Empty if the model has no such layer.
    """
    net = eval_view(model)
    xb = as_batch(x)
    return _patterns(net, xb.detach().to(device_of(net, xb.device)))


@dataclass(frozen=True, eq=False)
class PatternChange:
    """How activation patterns move under random sign perturbations (Sec. 3, Theorem 1).

    For each ε, inputs ``x' = clamp(x + ε·s, 0, 1)`` with ``s`` random ±1 are
    compared with ``x``. Per layer and sample the *changed fraction* is
    ``|A(x) Δ A(x')| / (|A(x)| + |A(x')|)``: for k-WTA (``|A| = k``) the share of
    winners replaced, in general a normalised Hamming distance (0: same pattern,
    1: disjoint; 0 when both are empty).

    Attributes:
        eps: ``(E,)`` perturbation sizes (L∞, pixel units).
        layers: Layer names, in forward order.
        changed_fraction: ``(E, L)`` changed fraction, averaged over samples and directions.
        changed_any: ``(E, L)`` share of (sample, direction) pairs whose pattern changed at all.
        n_samples: Inputs in the batch.
        n_dirs: Random directions per input.
        seed: Seed of the directions.
    """

    eps: Tensor
    layers: tuple[str, ...]
    changed_fraction: Tensor
    changed_any: Tensor
    n_samples: int
    n_dirs: int
    seed: int

    @property
    def mean_changed_fraction(self) -> Tensor:
        """``(E,)`` changed fraction averaged over layers."""
        return self.changed_fraction.mean(dim=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers."""
        out = {f: to_plain(getattr(self, f)) for f in self.__dataclass_fields__}
        out["mean_changed_fraction"] = to_plain(self.mean_changed_fraction)
        return out


def changed_fraction(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample ``|a Δ b| / (|a| + |b|)`` of boolean masks ``(B, …)``."""
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    sym = (a2 ^ b2).sum(dim=1).double()
    tot = (a2.sum(dim=1) + b2.sum(dim=1)).double()
    return torch.where(tot > 0, sym / tot.clamp_min(1), torch.zeros_like(sym))


def pattern_change(
    model: nn.Module,
    x: Tensor,
    eps_values: Sequence[float],
    *,
    n_dirs: int = 4,
    seed: int = 0,
    callback: Callback | None = None,
) -> PatternChange:
    """Share of each layer's activation pattern that changes under tiny perturbations.

    Sec. 3, Theorem 1: in a wide k-WTA layer even a tiny perturbation changes the
    activation pattern A(x) with high probability, which is what makes the
    network discontinuous almost everywhere in input space. For each ε in
    ``eps_values`` and each of ``n_dirs`` random sign directions ``s`` (the same
    directions for every ε), the patterns of ``clamp(x + ε·s, 0, 1)`` are compared
    with those of ``x``; see :class:`PatternChange` for the measures.

    Args:
        model: Network with activation layers that have a ``mask`` method; not modified.
        x: Batch ``(B, C, H, W)`` (or one image) in [0, 1].
        eps_values: Perturbation sizes ≥ 0 (pixel units, e.g. ``1/255``).
        n_dirs: Random sign directions per input.
        seed: Seed of the directions.
        callback: ``callback(done, total)`` over the ``len(eps_values)·n_dirs`` forwards.

    Returns:
        A :class:`PatternChange`.

    Raises:
        ValueError: Negative or non-finite ε, ``n_dirs < 1``, or no activation layers.
    """
    eps = [float(e) for e in eps_values]
    if not eps or any(not math.isfinite(e) or e < 0 for e in eps):
        raise ValueError(f"eps_values must be a non-empty list of finite values >= 0, got {eps}")
    if isinstance(n_dirs, bool) or not isinstance(n_dirs, int) or n_dirs < 1:
        raise ValueError(f"n_dirs must be a positive int, got {n_dirs!r}")
    net = eval_view(model)
    xb = as_batch(x)
    device = device_of(net, xb.device)
    xb = xb.detach().to(device)
    clean = _patterns(net, xb)
    if not clean:
        raise ValueError("the model has no activation layers with a .mask method")
    layers = tuple(clean)
    gen = torch.Generator().manual_seed(seed)
    dirs = [rademacher(xb.shape, gen).to(device, xb.dtype) for _ in range(n_dirs)]

    frac = torch.zeros(len(eps), len(layers), dtype=torch.float64)
    anyc = torch.zeros(len(eps), len(layers), dtype=torch.float64)
    total, done = len(eps) * n_dirs, 0
    for i, e in enumerate(eps):
        for d in dirs:
            masks = _patterns(net, (xb + e * d).clamp(0.0, 1.0))
            for j, name in enumerate(layers):
                cf = changed_fraction(clean[name], masks[name]).cpu()
                frac[i, j] += cf.mean()
                anyc[i, j] += (cf > 0).double().mean()
            done += 1
            if callback is not None:
                callback(done, total)
    return PatternChange(
        eps=torch.tensor(eps, dtype=torch.float64),
        layers=layers,
        changed_fraction=frac / n_dirs,
        changed_any=anyc / n_dirs,
        n_samples=int(xb.shape[0]),
        n_dirs=n_dirs,
        seed=seed,
    )


def pattern_overlap(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Pairwise overlap of the activation patterns of different inputs (Sec. 3, Theorem 2).

    Theorem 2: in a wide k-WTA layer the patterns of different inputs are nearly
    disjoint, so the weights serving each input can be trained almost
    independently. The overlap of inputs ``i`` and ``j`` is
    ``|A(xᵢ) ∩ A(xⱼ)| / sqrt(|A(xᵢ)|·|A(xⱼ)|)``, i.e. ``|A(xᵢ) ∩ A(xⱼ)| / k`` for
    k-WTA, where every pattern has ``k`` winners (0 if a pattern is empty). For
    random k-subsets of ``N`` units its expectation is ``k/N = γ``.

    Args:
        model: Network; not modified.
        x: Batch ``(B, …)`` of different inputs.

    Returns:
        Layer name → ``(B, B)`` float64 overlap matrix on the CPU (diagonal 1).
        See :func:`overlap_summary` for the mean off-diagonal overlap.
    """
    return masks_overlap(activation_patterns(model, x))


def masks_overlap(masks: dict[str, Tensor]) -> dict[str, Tensor]:
    """:func:`pattern_overlap` of patterns already computed (:func:`activation_patterns`)."""
    out: dict[str, Tensor] = {}
    for name, mask in masks.items():
        m = mask.reshape(mask.shape[0], -1).double()
        inter = m @ m.T
        size = m.sum(dim=1)
        denom = (size[:, None] * size[None, :]).sqrt()
        out[name] = torch.where(denom > 0, inter / denom.clamp_min(1e-300), 0.0).cpu()
    return out


def overlap_summary(overlaps: dict[str, Tensor]) -> dict[str, float]:
    """Mean off-diagonal overlap per layer of a :func:`pattern_overlap` result (NaN for B = 1)."""
    out: dict[str, float] = {}
    for name, mat in overlaps.items():
        b = mat.shape[0]
        off = ~torch.eye(b, dtype=torch.bool)
        out[name] = float(mat[off].mean()) if b > 1 else math.nan
    return out
