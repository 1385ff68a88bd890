"""Weight-space analyses: the loss along a line in weight space (Sec. 3,
Fig. 3c: training is not harmed) and accuracy as γ changes without retraining
(Sec. 4.2, Fig. 4).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kwta.analysis._common import (
    Attack,
    Callback,
    LossName,
    as_batch,
    check_batch_size,
    check_loss,
    device_of,
    labels_like,
    per_sample_loss,
    to_plain,
)
from kwta.attacks._core import is_correct
from kwta.nn.activations import KWTA, get_ratio, set_ratio
from kwta.nn.functional import check_ratio

__all__ = [
    "LINE_ALPHAS",
    "GammaSweep",
    "WeightLine",
    "gamma_sweep",
    "weight_line",
]


#: Default α of the weight-space line (Fig. 3c): ±0.02 in units of the filter-normalised
#: direction. Along the batch gradient the loss of the width-16 zoo models climbs from
#: ~1 to ~4-8 nats within this range (measured on 128 bundled test images); much
#: further (α = 0.05) it already explodes past 20.
LINE_ALPHAS: tuple[float, ...] = tuple(i / 500 for i in range(-10, 11))


@dataclass(frozen=True, eq=False)
class WeightLine:
    """Loss along a line ``w + α·d`` in weight space (Sec. 3, Fig. 3c).

    Attributes:
        alphas: ``(A,)`` step sizes α (in units of the normalised direction).
        loss: ``(A,)`` mean loss over the batch at ``w + α·d``.
        accuracy: ``(A,)`` accuracy over the batch at ``w + α·d``.
        direction: ``"gradient"`` or ``"random"``.
        normalization: ``"filter"`` or ``"global"``.
        loss_fn: ``"ce"`` or ``"margin"``.
        seed: Seed of the random direction.
    """

    alphas: Tensor
    loss: Tensor
    accuracy: Tensor
    direction: str
    normalization: str
    loss_fn: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings."""
        return {f: to_plain(getattr(self, f)) for f in self.__dataclass_fields__}


def _normalise_direction(
    d: dict[str, Tensor], w: dict[str, Tensor], normalization: str
) -> dict[str, Tensor]:
    if normalization == "global":
        dn = math.sqrt(sum(float((v.double() ** 2).sum()) for v in d.values()))
        wn = math.sqrt(sum(float((v.double() ** 2).sum()) for v in w.values()))
        factor = wn / dn if dn > 0 else 0.0
        return {n: v * factor for n, v in d.items()}
    out: dict[str, Tensor] = {}
    for n, v in d.items():
        rows_d = v.reshape(v.shape[0], -1) if v.dim() > 1 else v.reshape(1, -1)
        rows_w = w[n].reshape(rows_d.shape)
        dn = rows_d.norm(dim=1, keepdim=True)
        scale = torch.where(dn > 0, rows_w.norm(dim=1, keepdim=True) / dn.clamp_min(1e-30), 0.0)
        out[n] = (rows_d * scale).reshape(v.shape)
    return out


def weight_line(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    alphas: Sequence[float] | Tensor,
    direction: Literal["gradient", "random"] = "gradient",
    normalization: Literal["filter", "global"] = "filter",
    seed: int = 0,
    loss: LossName = "ce",
    batch_size: int = 256,
    callback: Callback | None = None,
) -> WeightLine:
    """Loss along a line in weight space (Sec. 3, "Why is the k-WTA network trainable?", Fig. 3c).

    Theorem 2 and Fig. 3c: although a k-WTA network is discontinuous in its
    weights, a weight change flips few activation patterns, so the *batch* loss
    is close to smooth along training directions. The loss over ``(x, y)`` is
    evaluated at ``w + α·d`` for every parameter ``w`` (frozen ones too) with
    :func:`torch.func.functional_call` on a private deep copy of the model (the
    call swaps parameters in temporarily, which a model shared with other threads
    must not see), so the model passed in is never touched. BatchNorm uses its
    running statistics (eval mode).

    The direction ``d`` is the negative gradient of the mean batch loss (a
    training step direction) for ``direction="gradient"``, or i.i.d. Gaussian
    (from ``seed``) for ``"random"``. It is then normalised:

    - ``"filter"`` (Li et al., 2018): each filter (row along the first dimension;
      a 1-D parameter counts as one filter) of ``d`` is scaled to the norm of the
      same filter of ``w``; so ``α = 1`` moves every filter by its own size. The
      scaling is positive per block, so a gradient direction stays a descent direction.
    - ``"global"``: ``d`` is scaled so that ``‖d‖ = ‖w‖`` over all parameters.

    Args:
        model: Classifier; not modified.
        x: Batch of inputs.
        y: Labels ``(B,)``.
        alphas: Step sizes α (include 0 to get the unperturbed loss).
        direction: ``"gradient"`` or ``"random"``.
        normalization: ``"filter"`` or ``"global"``.
        seed: Seed of the random direction.
        loss: ``"ce"`` or ``"margin"``; the gradient direction uses the same loss.
        batch_size: Inputs per forward pass.
        callback: ``callback(done, total)`` over the α values.

    Returns:
        A :class:`WeightLine`.

    Raises:
        ValueError: Unknown direction, normalisation or loss, empty ``alphas``, or a
            model without parameters.
    """
    if direction not in ("gradient", "random"):
        raise ValueError(f"direction must be 'gradient' or 'random', got {direction!r}")
    if normalization not in ("filter", "global"):
        raise ValueError(f"normalization must be 'filter' or 'global', got {normalization!r}")
    check_loss(loss)
    check_batch_size(batch_size)
    alpha = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1)
    if alpha.numel() == 0 or not bool(torch.isfinite(alpha).all()):
        raise ValueError("alphas must be a non-empty sequence of finite numbers")
    net = copy.deepcopy(model).eval()
    # every weight, frozen or not: the app's cached models have requires_grad off
    weights = {n: p.detach() for n, p in net.named_parameters()}
    if not weights:
        raise ValueError("the model has no parameters")
    xb = as_batch(x)
    device = device_of(net, xb.device)
    xb = xb.detach().to(device)
    yb = labels_like(y, xb.shape[0], device)
    n = xb.shape[0]

    if direction == "gradient":
        leaves = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
        grads = {k: torch.zeros_like(v) for k, v in weights.items()}
        for s in range(0, n, batch_size):
            with torch.enable_grad():
                out = torch.func.functional_call(net, leaves, (xb[s : s + batch_size],))
                part = per_sample_loss(out, yb[s : s + batch_size], loss).sum() / n
                gs = torch.autograd.grad(part, list(leaves.values()), allow_unused=True)
            for k, g in zip(leaves, gs, strict=True):
                if g is not None:
                    grads[k] += g
        raw = {k: -g for k, g in grads.items()}
    else:
        gen = torch.Generator().manual_seed(seed)
        raw = {
            k: torch.randn(v.shape, generator=gen, dtype=torch.float32).to(v.device, v.dtype)
            for k, v in weights.items()
        }
    d = _normalise_direction(raw, weights, normalization)

    losses = torch.empty(alpha.numel(), dtype=torch.float64)
    accs = torch.empty(alpha.numel(), dtype=torch.float64)
    with torch.no_grad():
        for i, a in enumerate(alpha.tolist()):
            params = {k: w + a * d[k] for k, w in weights.items()}
            tot_loss, correct = 0.0, 0
            for s in range(0, n, batch_size):
                out = torch.func.functional_call(net, params, (xb[s : s + batch_size],))
                ys = yb[s : s + batch_size]
                tot_loss += float(per_sample_loss(out, ys, loss).double().sum())
                correct += int((out.argmax(dim=1) == ys).sum())
            losses[i] = tot_loss / n
            accs[i] = correct / n
            if callback is not None:
                callback(i + 1, alpha.numel())
    return WeightLine(
        alphas=alpha,
        loss=losses,
        accuracy=accs,
        direction=direction,
        normalization=normalization,
        loss_fn=loss,
        seed=seed,
    )


@dataclass(frozen=True, eq=False)
class GammaSweep:
    """Accuracy of one set of weights evaluated at several sparsity ratios (Sec. 4.2, Fig. 4).

    Attributes:
        ratios: ``(R,)`` sparsity ratios γ, in the order given.
        clean_accuracy: ``(R,)`` accuracy on the clean inputs.
        robust_accuracy: ``(R,)`` share of inputs classified correctly both clean and after
            the attack, or ``None`` without an attack.
        original_ratio: The model's own γ (``None`` if its layers disagree).
    """

    ratios: Tensor
    clean_accuracy: Tensor
    robust_accuracy: Tensor | None
    original_ratio: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (``robust_accuracy`` is ``None`` without an attack)."""
        return {f: to_plain(getattr(self, f)) for f in self.__dataclass_fields__}


def gamma_sweep(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    ratios: Sequence[float],
    *,
    attack: Attack | None = None,
    batch_size: int = 256,
    callback: Callback | None = None,
) -> GammaSweep:
    """Clean (and robust) accuracy as the sparsity ratio γ changes (Sec. 4.2, Fig. 4).

    A deep copy of the model, in eval mode, is evaluated with every k-WTA layer
    set to each γ in turn (:func:`kwta.set_ratio`); the model passed in keeps its
    ratio. Note the paper *fine-tunes* the network at each γ (incremental
    fine-tuning, Sec. 2.2) before measuring Fig. 4; this sweep changes γ without
    retraining, so it shows the raw effect of γ on fixed weights: accuracy
    usually falls off away from the training ratio, faster towards small γ.

    Args:
        model: Network with k-WTA layers; not modified.
        x: Inputs.
        y: Labels ``(B,)``.
        ratios: Sparsity ratios γ, each in (0, 1].
        attack: Optional ``attack(model, x, y) -> x_adv``, run on the copy at each γ
            (for instance a PGD from :mod:`kwta.attacks` with its settings bound).
        batch_size: Inputs per forward pass for the accuracies.
        callback: ``callback(done, total)`` over the ratios.

    Returns:
        A :class:`GammaSweep`.

    Raises:
        ValueError: A ratio outside (0, 1], no ratios, or a model without k-WTA layers.
    """
    rs = [check_ratio(r) for r in ratios]
    if not rs:
        raise ValueError("ratios must not be empty")
    check_batch_size(batch_size)
    if not any(isinstance(m, KWTA) for m in model.modules()):
        raise ValueError("the model has no k-WTA layers to set a ratio on")
    try:
        original: float | None = get_ratio(model)
    except ValueError:
        original = None
    net = copy.deepcopy(model).eval()
    xb = as_batch(x)
    device = device_of(net, xb.device)
    xb = xb.detach().to(device)
    yb = labels_like(y, xb.shape[0], device)
    clean, robust = [], []
    for i, r in enumerate(rs):
        set_ratio(net, r)
        ok = is_correct(net, xb, yb, batch_size=batch_size)
        clean.append(float(ok.float().mean()))
        if attack is not None:
            x_adv = attack(net, xb, yb).detach().to(device)
            # robust = correct on the clean image and on its attacked version
            adv_ok = ok & is_correct(net, x_adv, yb, batch_size=batch_size)
            robust.append(float(adv_ok.float().mean()))
        if callback is not None:
            callback(i + 1, len(rs))
    return GammaSweep(
        ratios=torch.tensor(rs, dtype=torch.float64),
        clean_accuracy=torch.tensor(clean, dtype=torch.float64),
        robust_accuracy=torch.tensor(robust, dtype=torch.float64) if attack is not None else None,
        original_ratio=original,
    )
