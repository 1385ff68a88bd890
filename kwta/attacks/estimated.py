"""Adaptive attacks on k-WTA: PGD with *estimated* gradients.

Tramèr, Carlini, Brendel and Madry, "On Adaptive Attacks to Adversarial Example
Defenses" (NeurIPS 2020), Sec. 5.1 ("k-Winners Take All"), break an adversarially
trained k-WTA ResNet-18 with PGD whose gradient is not back-propagated but
*estimated* from forward passes: paired Gaussian finite differences with
``σ = 8/255`` on the margin loss, 100 steps of size 0.01, the number of samples
per step growing from 100 to 20 000 (:data:`TRAMER_SETTINGS`).

Why estimated gradients defeat k-WTA
------------------------------------
k-WTA keeps the ``k`` largest activations of a layer and zeroes the rest. The set
of winners changes *discontinuously* with the input: crossing a tie between the
k-th and the (k+1)-th activation switches one unit on and another off, and the
network jumps to a different linear piece. Those pieces are tiny — a PGD step of
0.003 crosses many of them — so the back-propagated gradient ``∇L(x)`` describes
the loss only inside the current piece and says little about where the loss goes
one step away (Xiao et al. themselves, Sec. 3, argue that this is what makes
gradient-based attacks fail). That is gradient *masking*, not robustness.

Both estimators here follow the gradient of the Gaussian-smoothed loss
``L_σ(x) = E_u[L(x + σu)]``, ``u ~ N(0, I)``, which is smooth even though ``L``
is not, and whose gradient points along the coarse trend of the loss over a
σ-neighbourhood — the trend that the piecewise structure hides:

- :func:`fd_pgd_linf` (Tramèr et al.) uses Stein's identity
  ``∇L_σ(x) = E[L(x + σu) u] / σ`` with antithetic pairs,
  ``g = 1/(2σn) Σ_i [L(x + σu_i) − L(x − σu_i)] u_i``. It needs forward passes
  only (a black-box, "gradient-free" attack) and is unbiased for ``∇L_σ`` even
  where ``L`` jumps.
- :func:`eot_pgd_linf` averages back-propagated gradients at Gaussian neighbours,
  ``g = (1/n) Σ_i ∇L(x + σu_i)`` (Expectation over Transformation, Athalye et
  al., ICML 2018). It is far cheaper per sample, but on a discontinuous ``L`` it
  estimates only the part of ``∇L_σ`` that comes from inside the linear pieces:
  the jumps between pieces — k-WTA's whole point — contribute nothing to any
  pointwise gradient.

On the CPU stand-in ``kwta0.1-nat`` (width 16, naturally trained), of the 30
bundled test images that the paper's PGD-40 (cross-entropy, random start) left
robust under at least one of three seeds (20-23 robust per seed), finite
differences with :data:`CPU_SETTINGS` leave 6 and EOT with its defaults 7. Part of
that gain is the margin loss alone: PGD-40 on the margin loss leaves 11-14 of the
30 — so compare with a margin-loss PGD too before crediting the estimator.
On zoo v2's ``kwta0.1-nat`` (80.75 % clean) the picture changes: of the 8 images of
``balanced_indices(200, seed=0)`` that PGD-40 leaves robust under seeds 0, 1 and 2,
finite differences with :data:`CPU_SETTINGS` break none (140 s), EOT with its
defaults breaks 6 (21 s; both seed 0, 1 CPU thread).

Both run the same projected sign ascent (:func:`_estimated_iterate`), with
per-image early stopping (a misclassified image is frozen and costs no more
queries), query counting and the optional :class:`~kwta.attacks._core.Trace`.

Conventions are those of :mod:`kwta.attacks`: pixels in [0, 1], results projected
onto the L∞ ε-ball and [0, 1], the model never touched (put it in eval mode),
randomness only from the optional ``generator``, work on ``x``'s device.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from kwta import paper
from kwta.attacks._core import (
    LossKind,
    ProgressCallback,
    Recorder,
    Trace,
    attack_loss,
    check_inputs,
    check_steps,
    claim_trace,
    project_linf,
    uniform_start,
)
from kwta.attacks._steps import step_models

__all__ = [
    "CPU_SETTINGS",
    "TRAMER_SETTINGS",
    "SampleSchedule",
    "eot_pgd_linf",
    "fd_pgd_linf",
    "sample_schedule",
]

log = logging.getLogger(__name__)


#: Samples per step: a constant ``n`` or a geometric schedule ``(start, end)``,
#: see :func:`sample_schedule`.
SampleSchedule = int | tuple[int, int]


#: Tramèr et al. (NeurIPS 2020), Sec. 5.1: the attack that broke k-WTA. 100 PGD steps
#: of 0.01 on the margin loss, gradients from antithetic Gaussian finite differences
#: with σ = 8/255 and 100 → 20 000 samples (pairs) per step, at the CIFAR-10 radius
#: 8/255 ≈ 0.031. 381 974 pairs, 764 049 forward passes for an image that stays
#: robust — about 1.5-2 hours per image on 2 CPU cores: GPU territory. The start
#: (``x`` itself, no random start) is our assumption; the paper does not say here.
TRAMER_SETTINGS: dict[str, Any] = {
    "eps": paper.EPS,
    "alpha": 0.01,
    "steps": 100,
    "sigma": 8 / 255,
    "samples": (100, 20_000),
    "loss": "margin",
    "random_start": False,
    "early_stop": True,
}


#: A reduced :func:`fd_pgd_linf` setting for a 2-core CPU: 20 steps of 0.005 (the
#: ε-ball is crossed in 7 steps) with 20 → 200 pairs per step — 1 598 pairs, 3 217
#: forward passes for an image that stays robust (1/240 of :data:`TRAMER_SETTINGS`) —
#: same σ and loss as Tramèr et al. Measured on ``kwta0.1-nat`` (the width-16 k-WTA
#: stand-in) and the 30 bundled test images that plain PGD-40 left robust under at
#: least one of three seeds: 6 stay robust (PGD: 20-23), 45 552 queries in all, 507 s
#: on 2 shared cores (load ~6; ~90 queries/s; about 35 s per image that resists).
CPU_SETTINGS: dict[str, Any] = {
    "eps": paper.EPS,
    "alpha": 0.005,
    "steps": 20,
    "sigma": 8 / 255,
    "samples": (20, 200),
    "loss": "margin",
    "random_start": False,
    "early_stop": True,
}


#: Estimates, for the images still attacked, the ascent direction of the loss.
#: ``(model, x, y, n, generator) -> (g, queries_per_image)``.
_Estimator = Callable[[nn.Module, Tensor, Tensor, int, torch.Generator | None], tuple[Tensor, int]]


def _parse_samples(samples: SampleSchedule | Sequence[int]) -> tuple[int, int]:
    """``(start, end)`` from an int or a pair, validated."""
    if isinstance(samples, numbers.Integral) and not isinstance(samples, bool):
        pair = (int(samples), int(samples))
    elif (
        isinstance(samples, Sequence)
        and not isinstance(samples, str)
        and len(samples) == 2
        and all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in samples)
    ):
        pair = (int(samples[0]), int(samples[1]))
    else:
        raise ValueError(f"samples must be an int or a pair (start, end) of ints, got {samples!r}")
    start, end = pair
    if start < 1 or end < 1:
        raise ValueError(f"samples per step must be >= 1, got {samples!r}")
    if start > end:
        raise ValueError(f"samples schedule must grow: start {start} > end {end}")
    return start, end


def sample_schedule(samples: SampleSchedule | Sequence[int], steps: int) -> list[int]:
    """The number of samples ``n_t`` used at steps ``t = 1 … steps``.

    A constant ``n`` gives ``n`` at every step. A pair ``(start, end)`` grows
    geometrically from ``start`` at step 1 to ``end`` at the last step::

        n_t = round(start · (end / start) ** ((t − 1) / (steps − 1)))

    (Python's ``round``, half to even; ``n_1 = start``, ``n_steps = end``, and a
    single step uses ``start``). Tramèr et al. grow the sample count from 100 to
    20 000 over their 100 steps; a geometric schedule spends few queries while the
    iterate is far from the boundary and most of them near it, where the
    estimate has to be precise.

    Args:
        samples: ``n`` or ``(start, end)`` with ``1 <= start <= end``.
        steps: Number of attack steps (``>= 0``).

    Returns:
        ``steps`` positive ints, non-decreasing.

    Raises:
        ValueError: ``samples`` not an int or a pair of ints, a count below 1,
            ``start > end``, or ``steps`` not a non-negative int.
    """
    check_steps(steps)
    start, end = _parse_samples(samples)
    if steps <= 1 or start == end:
        return [start] * steps
    ratio = end / start
    return [round(start * ratio ** ((t - 1) / (steps - 1))) for t in range(1, steps + 1)]


def _randn(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise drawn on the generator's device, moved to ``like``'s."""
    device = generator.device if generator is not None else like.device
    u = torch.randn(shape, generator=generator, device=device, dtype=like.dtype)
    return u.to(like.device)


def _chunks(b: int, n: int, rows: int) -> list[tuple[Tensor, int]]:
    """Split the ``b · n`` (image, sample) pairs into chunks of at most ``rows``.

    Returns, per chunk, the image index of each of its rows and its size.
    """
    owners = torch.arange(b).repeat_interleave(n)
    return [(owners[s : s + rows], len(owners[s : s + rows])) for s in range(0, b * n, rows)]


def _loss_rows(model: nn.Module, xs: Tensor, ys: Tensor, kind: LossKind, rows: int) -> Tensor:
    """Attack loss of every row of ``xs``, evaluated ``rows`` at a time (no gradients)."""
    out = [
        attack_loss(model(xs[s : s + rows]), ys[s : s + rows], kind)
        for s in range(0, len(xs), rows)
    ]
    return torch.cat(out)


def _fd_estimator(sigma: float, kind: LossKind, batch_size: int) -> _Estimator:
    """Antithetic Gaussian finite differences: ``2n`` forward passes per image."""
    pairs_per_chunk = max(1, batch_size // 2)

    def estimate(
        model: nn.Module, x: Tensor, y: Tensor, n: int, generator: torch.Generator | None
    ) -> tuple[Tensor, int]:
        b = x.shape[0]
        g = torch.zeros_like(x)
        with torch.no_grad():
            for owners, m in _chunks(b, n, pairs_per_chunk):
                owners = owners.to(x.device)
                u = _randn((m, *x.shape[1:]), x, generator)
                base = x[owners]
                xs = torch.cat([base + sigma * u, base - sigma * u])
                ys = y[owners].repeat(2)
                losses = _loss_rows(model, xs, ys, kind, batch_size)
                diff = (losses[:m] - losses[m:]).view(-1, *([1] * (x.dim() - 1)))
                g.index_add_(0, owners, diff * u)
        return g / (2.0 * sigma * n), 2 * n

    return estimate


def _eot_estimator(sigma: float, kind: LossKind, batch_size: int) -> _Estimator:
    """Mean back-propagated gradient at Gaussian neighbours: ``n`` forward + ``n`` backward."""

    def estimate(
        model: nn.Module, x: Tensor, y: Tensor, n: int, generator: torch.Generator | None
    ) -> tuple[Tensor, int]:
        b = x.shape[0]
        g = torch.zeros_like(x)
        for owners, m in _chunks(b, n, batch_size):
            owners = owners.to(x.device)
            u = _randn((m, *x.shape[1:]), x, generator)
            with torch.enable_grad():
                xr = (x[owners] + sigma * u).detach().requires_grad_(True)
                total = attack_loss(model(xr), y[owners], kind).sum()
                (grad,) = torch.autograd.grad(total, xr)
            g.index_add_(0, owners, grad.detach())
        return g / n, 2 * n

    return estimate


def _better(adv: Tensor, loss: Tensor, best_adv: Tensor, best_loss: Tensor) -> Tensor:
    """Whether ``(adv, loss)`` beats ``(best_adv, best_loss)``: adversarial first, then loss."""
    return (adv & ~best_adv) | ((adv == best_adv) & (loss > best_loss))


def _estimated_iterate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    estimator: Callable[[float, LossKind, int], _Estimator],
    eps: float,
    alpha: float,
    steps: int,
    sigma: float,
    samples: SampleSchedule | Sequence[int],
    loss: LossKind,
    random_start: bool,
    early_stop: bool,
    batch_size: int,
    record: bool,
    generator: torch.Generator | None,
    callback: ProgressCallback | None,
    precision: str,
) -> tuple[Tensor, Trace | None]:
    """Projected sign ascent along an estimated gradient, with early stop and query counts.

    Per step ``t``, for every image still attacked: estimate ``g`` at ``x_{t−1}``
    with ``n_t`` samples, ``x_t = Π(x_{t−1} + alpha · sign g)``, then one clean
    forward pass at ``x_t`` (1 query) to check it; with ``early_stop`` an image
    misclassified there is frozen. The starting point ``x_0`` is checked the same
    way before step 1. The estimates run on ``precision``'s fast path; the checks (and so
    whether an image is adversarial, and the trace) are fp32.
    """
    check_inputs(x, y, eps)
    check_steps(steps)
    if not alpha >= 0:
        raise ValueError(f"step size alpha must be >= 0, got {alpha}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma}")
    if loss not in ("ce", "margin"):
        raise ValueError(f"unknown attack loss {loss!r}; choose 'ce' or 'margin'")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise ValueError(f"batch_size must be an int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    schedule = sample_schedule(samples, steps)
    estimate = estimator(sigma, loss, int(batch_size))

    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.long)
    views = step_models(model, x, precision)
    b = x.shape[0]
    start = random_start and steps > 0
    x_cur = project_linf(x + uniform_start(x, eps, generator), x, eps) if start else x.clone()

    with torch.no_grad():
        logits = views.exact(x_cur)
    queries = torch.ones(b, dtype=torch.long, device=x.device)
    adv = logits.argmax(dim=1) != y
    cur_loss = attack_loss(logits, y, loss)
    best, best_adv, best_loss = x_cur.clone(), adv.clone(), cur_loss.clone()
    active = ~adv if early_stop else torch.ones_like(adv)

    rec = Recorder(x, y, loss) if record else None
    rows: list[Tensor] = []
    if rec is not None:
        if start:
            with torch.no_grad():
                rec.add(x, views.exact(x))
        else:
            rec.add(x, logits.clone())
        rows.append(queries.clone())

    for step, n in enumerate(schedule, start=1):
        idx = active.nonzero().squeeze(1)
        if len(idx):
            xa, ya = x_cur[idx], y[idx]
            g, cost = estimate(views.step, xa, ya, n, generator)
            xa = project_linf(xa + alpha * g.sign(), x[idx], eps)
            with torch.no_grad():
                la = views.exact(xa)
            x_cur[idx] = xa
            logits[idx] = la
            queries[idx] += cost + 1
            a_adv = la.argmax(dim=1) != ya
            a_loss = attack_loss(la, ya, loss)
            better = _better(a_adv, a_loss, best_adv[idx], best_loss[idx])
            upd = idx[better]
            best[upd] = xa[better]
            best_adv[upd] = a_adv[better]
            best_loss[upd] = a_loss[better]
            if early_stop:
                active[idx[a_adv]] = False
        if rec is not None:
            rec.add(x_cur, logits.clone())  # logits is updated in place
            rows.append(queries.clone())
        if callback is not None:
            callback(step, steps)
        log.debug(
            "step %d/%d: %d samples, %d images attacked, %d adversarial",
            step,
            steps,
            n,
            len(idx),
            int(best_adv.sum()),
        )

    best = project_linf(best, x, eps)  # a no-op but for rounding: every iterate was projected
    trace = None
    if rec is not None:
        t = rec.trace()
        trace = Trace(
            logits=t.logits,
            loss=t.loss,
            linf=t.linf,
            pred=t.pred,
            labels=t.labels,
            queries=torch.stack(rows),
        )
    return best.detach().contiguous(), trace


def fd_pgd_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float = 0.01,
    steps: int = 100,
    sigma: float = 8 / 255,
    samples: SampleSchedule = (100, 20_000),
    loss: LossKind = "margin",
    random_start: bool = False,
    early_stop: bool = True,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
    precision: str = "auto",
) -> Tensor:
    """L∞ PGD on finite-difference gradient estimates (Tramèr et al., NeurIPS 2020, Sec. 5.1).

    Gradient-free: only forward passes, under :func:`torch.no_grad`. At step ``t``
    the gradient at ``x_{t−1}`` is estimated from ``n_t`` antithetic Gaussian pairs
    (Stein's identity for the σ-smoothed loss, see the module docstring)::

        g = 1/(2σ n_t) · Σ_i [L(x + σu_i) − L(x − σu_i)] u_i,   u_i ~ N(0, I)

    and ``x_t = Π_{B∞(x, eps) ∩ [0,1]}(x_{t−1} + alpha · sign g)``. The perturbed
    points ``x ± σu_i`` are *not* clipped to [0, 1] (clipping would bias the
    estimator; the model normalises inside and accepts any real input). ``n_t``
    follows :func:`sample_schedule`. The defaults are Tramèr et al.'s setting
    (:data:`TRAMER_SETTINGS`); :data:`CPU_SETTINGS` is a reduced one for a CPU.

    **Early stop and return value.** After each step, every image still attacked
    gets one clean forward pass at its new iterate (the start point ``x_0`` is
    checked too). With ``early_stop`` an image misclassified there is frozen: it
    costs no more queries and is returned at that adversarial point. Per image the
    attack returns the *best* iterate it evaluated — an adversarial one if any
    (the first, with ``early_stop``; otherwise the adversarial one of highest
    loss), else the one of highest loss (with the margin loss: the one closest to
    the decision boundary), not necessarily the last: with noisy estimated
    gradients the loss does not rise monotonically.

    **Queries** (model evaluations per image, ``Trace.queries``): 1 for ``x_0``,
    then per step ``2 n_t + 1`` (the pairs and the check). An image never frozen
    spends ``steps + 1 + 2 Σ_t n_t``: 764 049 with Tramèr et al.'s setting, 3 217
    with :data:`CPU_SETTINGS`.

    **Cost on a CPU**: the width-16 k-WTA ResNet-18 ``kwta0.1-nat`` evaluates about
    100-150 images per second on 2 cores (batch 256-1 024, unloaded) and fewer under
    load; :data:`CPU_SETTINGS` costs about 35 s per image that resists and much less
    for one broken early (see its comment for a measured run); the full setting
    would take 1.5-2 hours per image.

    Args:
        model: Classifier taking pixels in [0, 1]; put it in eval mode first.
        x: ``(B, ...)`` clean inputs in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius (Tramèr et al.: 8/255; the k-WTA paper: 0.031).
        alpha: Step size.
        steps: Number of steps.
        sigma: Standard deviation of the Gaussian probes, > 0.
        samples: Pairs per step: ``n`` or a geometric schedule ``(start, end)``.
        loss: Loss to maximise, see :func:`~kwta.attacks._core.attack_loss`.
        random_start: Start at a uniform random point of the ε-ball instead of ``x``.
        early_stop: Freeze each image once it is misclassified.
        batch_size: Most rows per forward pass (bounds memory; each chunk of
            ``batch_size // 2`` pairs is one pass).
        generator: The only source of randomness when given (noise and start).
        callback: ``callback(step, steps)`` after each step.
        precision: The estimates' autocast (``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``;
            see :func:`~kwta.attacks._steps.resolve_step_precision`); each step's check,
            and so the early stop and the trace, are fp32.

    Returns:
        ``x_adv``. Under :func:`~kwta.attacks._core.traced` also the
        :class:`~kwta.attacks._core.Trace` (with ``queries``): row 0 is the clean input, row
        ``t`` the iterate after step ``t`` (frozen images repeat their row); with
        ``early_stop`` its last row has ``x_adv``'s predictions (though for images not
        broken ``x_adv`` may be an earlier, higher-loss iterate).

    Raises:
        ValueError: Negative ``eps`` or ``alpha``, ``sigma <= 0``, bad ``samples``
            (below 1, ``start > end``, not ints), ``steps`` or ``batch_size``
            invalid, unknown ``loss``, inputs outside [0, 1] or mis-shaped.
    """
    box = claim_trace()
    x_adv, trace = _estimated_iterate(
        model,
        x,
        y,
        estimator=_fd_estimator,
        eps=eps,
        alpha=alpha,
        steps=steps,
        sigma=sigma,
        samples=samples,
        loss=loss,
        random_start=random_start,
        early_stop=early_stop,
        batch_size=batch_size,
        record=box is not None,
        generator=generator,
        callback=callback,
        precision=precision,
    )
    if box is not None:
        box.trace = trace
    return x_adv


def eot_pgd_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float = 0.005,
    steps: int = 20,
    sigma: float = 8 / 255,
    samples: SampleSchedule = (10, 100),
    loss: LossKind = "margin",
    random_start: bool = False,
    early_stop: bool = True,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
    precision: str = "auto",
) -> Tensor:
    """L∞ PGD on gradients averaged over Gaussian neighbours (EOT, "smoothed gradient").

    White-box: at step ``t`` the ascent direction at ``x_{t−1}`` is ::

        g = (1/n_t) · Σ_i ∇_x L(x + σu_i),   u_i ~ N(0, I)

    (back-propagated with :func:`torch.autograd.grad` w.r.t. the input only; the
    probes are not clipped), then ``x_t = Π(x_{t−1} + alpha · sign g)``. Same loop,
    early stop, return value and trace as :func:`fd_pgd_linf`; only the estimator
    differs. Expectation over Transformation (Athalye, Carlini, Wagner, ICML 2018,
    Sec. 4.3) with Gaussian noise as the transformation; Tramèr et al. (Sec. 5.1)
    used finite differences instead.

    **Defaults** (``sigma``, ``samples``, ``alpha``, ``steps``): a backward pass
    gives a whole gradient per sample, so far fewer samples are needed than for
    finite differences — 10 → 100 per step, 20 steps of 0.005 (the ε-ball is
    crossed in 7 steps). ``σ = 8/255`` as for finite differences, so that the
    neighbours span many of k-WTA's linear pieces. On ``kwta0.1-nat`` the choice
    matters little: with 10 steps and 5 → 20 samples, 12 images that PGD-40 never
    broke kept 7, 8, 7, 7, 8 of 12 robust at σ = 0.0001, 2/255, 4/255, 8/255,
    16/255 (seed 0) — even tiny noise lands on other linear pieces. The defaults
    on the 30 bundled test images that PGD-40 left robust under some seed: 7 stay
    robust, 16 407 queries, 204 s on 2 shared cores; an image that resists costs
    1 619 queries, about 30 s (a backward pass through k-WTA is slow on a CPU, so
    per image this is no faster than :data:`CPU_SETTINGS`). See the module
    docstring for why this estimator is biased on k-WTA's discontinuities; it is
    offered as the white-box counterpart of :func:`fd_pgd_linf`.

    **Queries**: each sample is one forward *and* one backward pass and counts
    as 2 (the :class:`~kwta.attacks._core.Trace` convention), plus 1 per check: an image
    never frozen spends ``steps + 1 + 2 Σ_t n_t``.

    Args:
        model: Classifier taking pixels in [0, 1]; put it in eval mode first.
        x: ``(B, ...)`` clean inputs in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius.
        alpha: Step size.
        steps: Number of steps.
        sigma: Standard deviation of the Gaussian neighbours, > 0.
        samples: Gradients per step: ``n`` or ``(start, end)``, see
            :func:`sample_schedule`.
        loss: Loss to maximise, see :func:`~kwta.attacks._core.attack_loss`.
        random_start: Start at a uniform random point of the ε-ball instead of ``x``.
        early_stop: Freeze each image once it is misclassified.
        batch_size: Most rows per forward/backward pass (bounds memory).
        generator: The only source of randomness when given (noise and start).
        callback: ``callback(step, steps)`` after each step.
        precision: The estimates' autocast (``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``;
            see :func:`~kwta.attacks._steps.resolve_step_precision`); each step's check,
            and so the early stop and the trace, are fp32.

    Returns:
        ``x_adv``; under :func:`~kwta.attacks._core.traced` also the
        :class:`~kwta.attacks._core.Trace` (see :func:`fd_pgd_linf`).

    Raises:
        ValueError: As :func:`fd_pgd_linf`.
    """
    box = claim_trace()
    x_adv, trace = _estimated_iterate(
        model,
        x,
        y,
        estimator=_eot_estimator,
        eps=eps,
        alpha=alpha,
        steps=steps,
        sigma=sigma,
        samples=samples,
        loss=loss,
        random_start=random_start,
        early_stop=early_stop,
        batch_size=batch_size,
        record=box is not None,
        generator=generator,
        callback=callback,
        precision=precision,
    )
    if box is not None:
        box.trace = trace
    return x_adv
