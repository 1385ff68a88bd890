"""The Square attack under L∞ (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020, Sec. 3,
Alg. 1 and 2): a black-box random search that only ever looks at the model's outputs, the
component of AutoAttack that a masked gradient cannot mislead. Forward passes only, under
:func:`torch.no_grad`.

It follows the conventions of :mod:`kwta.attacks` as :mod:`kwta.attacks.apgd` states them
(checked against ``pyautoattack`` in ``tests/test_autoattack.py``).
"""

from __future__ import annotations

import logging
import math
import numbers
from typing import Literal

import torch
from torch import Tensor, nn

from kwta.attacks._core import (
    BatchRecorder,
    ProgressCallback,
    attack_loss,
    check_inputs,
    check_steps,
    claim_trace,
    linf_distance,
    project_linf,
)
from kwta.attacks._steps import step_models

__all__ = [
    "SquareLoss",
    "square_linf",
    "square_p_schedule",
]

log = logging.getLogger(__name__)


#: Losses the Square attack maximises: the logit margin (the paper's) or cross-entropy.
SquareLoss = Literal["margin", "ce"]


def _rand(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform ``[0, 1)`` noise on ``like``'s device and dtype, drawn on the generator's device."""
    device = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=device, dtype=like.dtype)
    return u.to(like.device)


def _random_sign(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``±1`` with probability 1/2 each."""
    return torch.where(_rand(shape, like, generator) < 0.5, -1.0, 1.0).to(like.dtype)


def square_p_schedule(i: int, queries: int, p_init: float = 0.8) -> float:
    """Fraction ``p`` of pixels a square covers at iteration ``i`` (Andriushchenko et al., Sec. 3).

    ``p`` starts at ``p_init`` and halves after iterations 10, 50, 200, 500, 1000,
    2000, 4000, 6000 and 8000 of a 10 000-query budget; as in the reference code,
    the iteration is first rescaled to that budget: ``i ← ⌊i / queries · 10000⌋``.

    Args:
        i: Iteration (0-based, the stripe initialisation not counted).
        queries: Query budget.
        p_init: Initial fraction.

    Returns:
        ``p_init / 2^j`` for the schedule's ``j``.
    """
    it = int(i / max(queries, 1) * 10000)
    halvings = sum(it > b for b in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / 2**halvings


@torch.no_grad()
def square_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    queries: int = 5000,
    p_init: float = 0.8,
    loss: SquareLoss = "margin",
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
    precision: str = "auto",
) -> Tensor:
    """Square attack under L∞ (Andriushchenko et al., ECCV 2020, Sec. 3.1, Alg. 1 and 2).

    A black-box random search that only queries the model's logits. It starts
    from vertical stripes: every column of every channel is shifted by ``±eps``
    (Sec. 3.1). Each further query changes one random square window of side
    ``s = max(round(sqrt(p · h·w)), 1)`` (at most the image size) to ``±2·eps``
    per channel, projects back onto the ε-ball and [0, 1], and keeps the result
    if it raises the loss (the margin ``max_{j≠y} z_j − z_y`` by default) or
    misclassifies the image. ``p`` follows :func:`square_p_schedule`. An image
    stops being queried as soon as it is misclassified. Runs under
    :func:`torch.no_grad`: forward passes only.

    Only images the model classifies correctly are attacked (the clean check is
    not counted as a query). Per image at most ``queries`` forward passes are
    spent, the stripe initialisation being the first.

    Args:
        model: Classifier taking pixels in [0, 1] (eval mode).
        x: ``(B, C, H, W)`` clean images in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius.
        queries: Query budget per image (AutoAttack uses 5000).
        p_init: Initial fraction of pixels changed per query (0.8 for L∞ in
            the paper and AutoAttack).
        loss: ``"margin"`` or ``"ce"``, see :func:`kwta.attacks._core.attack_loss`.
        generator: Source of all randomness (global RNG if ``None``).
        callback: ``callback(step, queries)`` after each query step; a last
            ``callback(queries, queries)`` when every image is broken early.
        precision: The queries' autocast (``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``;
            see :func:`~kwta.attacks._steps.resolve_step_precision`). A query that looks
            adversarial in reduced precision is confirmed in fp32 before the image counts
            as broken; the trace's logits are fp32.

    Returns:
        Per image the adversarial point found, else the best point (highest
        loss); images misclassified to begin with come back unchanged. Under
        :func:`~kwta.attacks._core.traced` also the :class:`~kwta.attacks._core.Trace`:
        row 0 is the clean input, row ``t`` the best point after ``t`` queries (the
        stripe initialisation is row 1); ``trace.queries[-1]`` holds the per-image
        query counts. Rows stop when every image is broken. Memory grows as
        ``(queries + 1) · B · C``.

    Raises:
        ValueError: Bad arguments or ``x`` not a batch of images.
    """
    check_inputs(x, y, eps)
    check_steps(queries, "queries")
    if x.dim() != 4:
        raise ValueError(f"Square attacks images: expected x of shape (B, C, H, W), got {x.shape}")
    if isinstance(p_init, bool) or not isinstance(p_init, numbers.Real) or not 0 < p_init <= 1:
        raise ValueError(f"p_init must be in (0, 1], got {p_init!r}")
    if loss not in ("margin", "ce"):
        raise ValueError(f"unknown Square loss {loss!r}; choose 'margin' or 'ce'")
    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.long)
    views = step_models(model, x, precision)
    clean = views.exact(x)
    box = claim_trace()
    rows = (
        BatchRecorder(clean, y, lambda z, t: attack_loss(z, t, loss)) if box is not None else None
    )
    out = x.clone()
    where = (clean.argmax(dim=1) == y).nonzero().squeeze(1)

    reported = 0

    def finish() -> Tensor:
        if callback is not None and reported < queries:
            callback(queries, queries)
        x_adv = project_linf(out, x, eps).contiguous()
        if box is not None and rows is not None:
            box.trace = rows.trace()
        return x_adv

    if queries == 0 or eps == 0 or where.numel() == 0:
        return finish()
    xs, ys = x[where], y[where]
    n, c, h, w = xs.shape

    # Sec. 3.1: vertical-stripe initialisation, ±eps per column and channel
    x_best = project_linf(xs + eps * _random_sign((n, c, 1, w), xs, generator), xs, eps)
    logits = views.exact(x_best)
    f_best = attack_loss(logits, ys, loss)
    broken = logits.argmax(dim=1) != ys
    if rows is not None:
        rows.logits[where] = logits
        rows.linf[where] = linf_distance(x_best, xs)
        rows.queries[where] += 1
        rows.snapshot()
    reported = 1
    if callback is not None:
        callback(1, queries)
    rr = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cc = torch.arange(w, device=x.device).view(1, 1, 1, w)
    for i in range(queries - 1):
        act = (~broken).nonzero().squeeze(1)
        if act.numel() == 0:
            break
        m = act.numel()
        p = square_p_schedule(i, queries, p_init)
        s = min(max(round(math.sqrt(p * h * w)), 1), h, w)
        # a window at a uniformly random position (per image), ±2·eps per channel
        top = (_rand((m,), xs, generator) * (h - s + 1)).long().clamp(max=h - s).view(m, 1, 1, 1)
        left = (_rand((m,), xs, generator) * (w - s + 1)).long().clamp(max=w - s).view(m, 1, 1, 1)
        signs = _random_sign((m, c, 1, 1), xs, generator)
        window = (rr >= top) & (rr < top + s) & (cc >= left) & (cc < left + s)
        x_new = project_linf(x_best[act] + window * (2.0 * eps) * signs, xs[act], eps)
        logits = views.step(x_new)
        f_new = attack_loss(logits, ys[act], loss)
        hit = logits.argmax(dim=1) != ys[act]
        if views.reduced and bool(hit.any()):  # broken is an fp32 verdict
            claimed = hit.nonzero().squeeze(1)
            hit[claimed] = views.exact(x_new[claimed]).argmax(dim=1) != ys[act][claimed]
        accept = hit | (f_new > f_best[act])
        ia = act[accept]
        x_best[ia] = x_new[accept]
        f_best[ia] = f_new[accept]
        broken[act[hit]] = True
        if rows is not None:
            g = where[act]
            rows.queries[g] += 1
            g_acc = where[ia]
            rows.logits[g_acc] = views.exact(x_new[accept]) if views.reduced else logits[accept]
            rows.linf[g_acc] = linf_distance(x_new[accept], xs[ia])
            rows.snapshot()
        reported = i + 2
        if callback is not None:
            callback(reported, queries)
    out[where] = x_best
    log.debug(
        "square: %d of %d correct images broken with %d queries",
        int(broken.sum()),
        n,
        queries,
    )
    return finish()
