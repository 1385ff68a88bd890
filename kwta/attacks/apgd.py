"""Auto-PGD under L∞ (Croce & Hein, ICML 2020, Sec. 3, Alg. 1) on the cross-entropy or the
difference of logits ratio (DLR, Sec. 4): PGD without a step size to tune, one of
AutoAttack's components. Gradients with :func:`torch.autograd.grad` w.r.t. the input only.

The functions follow the conventions of :mod:`kwta.attacks`: keyword-only hyper-parameters,
the norm in the name; adversarial pixels projected onto the L∞ ε-ball around ``x`` and
clamped to [0, 1]; images the model already misclassifies (and every image once ``eps`` is
0) come back unchanged; the model's parameters, their ``.grad`` and its train/eval mode are
never touched; all randomness comes from the optional ``generator`` (drawn on its device);
``callback(step, steps)`` reports progress, and under :func:`kwta.attacks._core.traced` they
also return a :class:`~kwta.attacks._core.Trace` with per-image query counts. Unlike the
reference code (``fra31/auto-attack``), nothing here reseeds the global RNG or prints, so
the attacks can run inside a shared server; ``tests/test_autoattack.py`` checks them against
it (``pyautoattack``).
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import Tensor, nn

from kwta.attacks._core import (
    BatchRecorder,
    ProgressCallback,
    attack_loss,
    best_other,
    check_inputs,
    check_steps,
    claim_trace,
    linf_distance,
    project_linf,
    uniform_start,
)
from kwta.attacks._steps import StepModels, step_models

__all__ = [
    "APGDLoss",
    "apgd_checkpoints",
    "apgd_linf",
    "dlr_loss",
]

log = logging.getLogger(__name__)


#: Losses APGD maximises: cross-entropy or the difference of logits ratio.
APGDLoss = Literal["ce", "dlr"]


#: APGD's momentum α (Croce & Hein 2020, Sec. 3.2, Eq. 2).
_MOMENTUM = 0.75


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of logits ratio (Croce & Hein, ICML 2020, Sec. 4, Eq. 5), to be maximised.

    ``DLR(z, y) = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3 + 1e-12)`` with ``π`` the
    logits sorted in decreasing order. It is invariant to shifting and rescaling
    the logits, so a defense cannot hide behind large or saturated logits; it is
    positive exactly when the sample is misclassified.

    Args:
        logits: ``(B, C)`` model outputs, ``C >= 3``.
        y: ``(B,)`` true labels.

    Returns:
        ``(B,)`` losses.

    Raises:
        ValueError: Fewer than 3 classes.
    """
    if logits.dim() != 2 or logits.shape[1] < 3:
        raise ValueError(
            f"the DLR loss needs logits of shape (B, C >= 3), got {tuple(logits.shape)}"
        )
    top = logits.topk(3, dim=1).values
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    return -(z_y - best_other(logits, y)) / (top[:, 0] - top[:, 2] + 1e-12)


def _loss(logits: Tensor, y: Tensor, kind: str) -> Tensor:
    """Per-sample loss to maximise: ``"dlr"`` or a kind of :func:`attack_loss`."""
    if kind == "dlr":
        return dlr_loss(logits, y)
    return attack_loss(logits, y, kind)  # type: ignore[arg-type]


def _loss_and_grad(
    model: nn.Module, x_adv: Tensor, y: Tensor, kind: str
) -> tuple[Tensor, Tensor, Tensor]:
    """Logits and loss at ``x_adv`` and the gradient of the summed loss w.r.t. ``x_adv`` only."""
    with torch.enable_grad():
        xr = x_adv.detach().requires_grad_(True)
        logits = model(xr)
        loss = _loss(logits, y, kind)
        (grad,) = torch.autograd.grad(loss.sum(), xr)
    return logits.detach(), loss.detach(), grad.detach()


def _view(x: Tensor) -> tuple[int, ...]:
    return (-1,) + (1,) * (x.dim() - 1)


def apgd_checkpoints(steps: int) -> list[int]:
    """Iterations ``w_j`` after which APGD checks its step size (Croce & Hein 2020, Sec. 3.2).

    ``w_j = ⌈p_j · N⌉`` with ``p_0 = 0``, ``p_1 = 0.22`` and
    ``p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)``, in the integer form of
    the reference code: the first interval is ``max(⌊0.22 N⌋, 1)`` steps and each
    next one ``max(⌊0.03 N⌋, 1)`` shorter, but at least ``max(⌊0.06 N⌋, 1)``.
    For ``N = 100``: ``[22, 41, 57, 70, 80, 87, 93, 99]``.

    Args:
        steps: Number of iterations ``N``.

    Returns:
        The checkpoints in ``1..N``, increasing.
    """
    check_steps(steps)
    length = max(int(0.22 * steps), 1)
    shrink = max(int(0.03 * steps), 1)
    shortest = max(int(0.06 * steps), 1)
    out: list[int] = []
    w = length
    while w <= steps:
        out.append(w)
        length = max(length - shrink, shortest)
        w += length
    return out


def _apgd_run(
    views: StepModels,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int,
    kind: str,
    rho: float,
    random_start: bool,
    generator: torch.Generator | None,
    rows: BatchRecorder | None,
    where: Tensor,
    tick: ProgressCallback,
) -> tuple[Tensor, Tensor, Tensor]:
    """One APGD run (Alg. 1) on correctly classified ``x``; ``where`` indexes them in the batch.

    Returns ``(x_out, loss_out, broken)``: per image the first adversarial iterate,
    else the iterate of highest loss (and its loss). Steps and losses come from
    ``views.step``; whether an iterate is adversarial, and the trace's logits, from
    ``views.exact`` (fp32).
    """

    def exact(x_t: Tensor, step_logits: Tensor) -> Tensor:
        if not views.reduced:
            return step_logits
        with torch.no_grad():
            return views.exact(x_t)

    view = _view(x)
    if random_start:
        # as the reference code: uniform noise rescaled to L∞ norm eps
        t = uniform_start(x, 1.0, generator)
        t = t / (t.flatten(1).abs().amax(dim=1).view(view) + 1e-12)
        x_cur = project_linf(x + eps * t, x, eps)
    else:
        x_cur = x.clone()
    logits, loss, grad = _loss_and_grad(views.step, x_cur, y, kind)
    broken = exact(x_cur, logits).argmax(dim=1) != y
    x_found = x_cur.clone()  # meaningful where broken
    x_max, f_max, g_max = x_cur.clone(), loss.clone(), grad.clone()
    f_prev = loss.clone()
    x_prev = x_cur.clone()
    eta = torch.full((len(x),), 2.0 * eps, device=x.device, dtype=x.dtype)
    successes = torch.zeros(len(x), device=x.device, dtype=torch.long)
    f_max_last = f_max.clone()
    reduced_last = torch.zeros(len(x), device=x.device, dtype=torch.bool)
    checkpoints = set(apgd_checkpoints(steps))
    last_check = 0
    if rows is not None:
        rows.queries[where] += 2  # forward + backward at the start point
    for k in range(steps):
        act = (~broken).nonzero().squeeze(1)
        if act.numel() == 0:
            return x_found, f_max, broken
        xa, x0 = x_cur[act], x[act]
        z = project_linf(xa + eta[act].view(view) * grad[act].sign(), x0, eps)
        if k == 0:
            x_new = z
        else:  # Eq. 2: momentum on the last two iterates
            x_new = project_linf(
                xa + _MOMENTUM * (z - xa) + (1.0 - _MOMENTUM) * (xa - x_prev[act]), x0, eps
            )
        logits, loss, g_new = _loss_and_grad(views.step, x_new, y[act], kind)
        logits = exact(x_new, logits)
        x_prev[act] = xa
        x_cur[act] = x_new
        grad[act] = g_new
        successes[act] += (loss > f_prev[act]).long()
        f_prev[act] = loss
        better = loss > f_max[act]
        if bool(better.any()):
            ib = act[better]
            x_max[ib], f_max[ib], g_max[ib] = x_new[better], loss[better], g_new[better]
        hit = logits.argmax(dim=1) != y[act]
        if bool(hit.any()):
            broken[act[hit]] = True
            x_found[act[hit]] = x_new[hit]
        if rows is not None:
            g = where[act]
            rows.logits[g] = logits
            rows.linf[g] = linf_distance(x_new, x0)
            rows.queries[g] += 2
            rows.snapshot()
        if k + 1 in checkpoints:
            # Sec. 3.2: halve η if (1) fewer than a fraction ρ of the steps since the
            # last checkpoint increased the loss, or (2) neither η nor the best loss
            # changed since then; restart from the best point when halving.
            span = k + 1 - last_check
            reduce = (successes < rho * span) | (~reduced_last & (f_max <= f_max_last))
            if bool(reduce.any()):
                eta[reduce] /= 2.0
                x_cur[reduce] = x_max[reduce]
                grad[reduce] = g_max[reduce]
                f_prev[reduce] = f_max[reduce]
            reduced_last = reduce
            f_max_last = f_max.clone()
            successes.zero_()
            last_check = k + 1
        tick(k + 1, steps)
    x_out = torch.where(broken.view(view), x_found, x_max)
    return x_out, f_max, broken


def apgd_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int = 100,
    loss: APGDLoss = "ce",
    rho: float = 0.75,
    restarts: int = 1,
    random_start: bool = True,
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
    precision: str = "auto",
) -> Tensor:
    """Auto-PGD under L∞ (Croce & Hein, ICML 2020, Sec. 3, Alg. 1), untargeted.

    PGD without a step size to tune: it starts with ``η = 2·eps`` and takes
    momentum steps (Sec. 3.1, Eq. 2, ``α = 0.75``)
    ``z = Π(x_k + η · sign ∇f(x_k))``,
    ``x_{k+1} = Π(x_k + α (z − x_k) + (1 − α)(x_k − x_{k−1}))``
    (the first step without momentum), ``Π`` the projection onto the ε-ball and
    [0, 1]. At the checkpoints of :func:`apgd_checkpoints` (Sec. 3.2) it halves
    ``η`` for an image when fewer than a fraction ``rho`` of the steps since the
    last checkpoint increased its loss, or when neither ``η`` nor its best loss
    changed since then, and then restarts from the best point found so far.

    As in AutoAttack, only images the model classifies correctly are attacked;
    an image is left alone as soon as an iterate misclassifies it and that
    iterate is returned; otherwise the iterate of highest loss over all restarts
    is returned. Each restart (a fresh random start) attacks only the images
    still not broken. The AutoAttack "standard" setting is 100 steps, one
    restart, for each of ``loss="ce"`` and ``loss="dlr"``.

    Args:
        model: Classifier taking pixels in [0, 1]; put it in eval mode first.
        x: ``(B, ...)`` clean inputs in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius.
        steps: Iterations ``N`` per restart.
        loss: ``"ce"`` (cross-entropy) or ``"dlr"`` (:func:`dlr_loss`, needs >= 3 classes).
        rho: Fraction of loss-increasing steps below which ``η`` is halved.
        restarts: Number of runs, each from a new random start.
        random_start: Start at a random point of the ε-ball (else at ``x``; then
            restarts repeat the same run).
        generator: Source of the random starts (global RNG if ``None``).
        callback: ``callback(step, restarts · steps)`` after each step; a last
            ``callback(total, total)`` when the attack stops early.
        precision: The steps' autocast (``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``; see
            :func:`~kwta.attacks._steps.resolve_step_precision`); whether an iterate is
            adversarial, and the trace, are fp32 always.

    Returns:
        ``x_adv`` of ``x``'s shape and dtype. Under :func:`~kwta.attacks._core.traced`
        also the :class:`~kwta.attacks._core.Trace`: row 0 is the clean input, row
        ``t`` the iterate after step ``t`` counted over the restarts (images not
        attacked in a step repeat their last row); its ``loss`` is ``loss``'s, its
        ``queries`` counts a forward and a backward pass per gradient. Rows stop when
        every image is broken. A broken image's last row is the returned point; for
        the others the returned point is the iterate of highest loss, not
        necessarily the last row.

    Raises:
        ValueError: Bad arguments (also DLR with fewer than 3 classes).
    """
    check_inputs(x, y, eps)
    check_steps(steps)
    check_steps(restarts, "restarts")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    if loss not in ("ce", "dlr"):
        raise ValueError(f"unknown APGD loss {loss!r}; choose 'ce' or 'dlr'")
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.long)
    views = step_models(model, x, precision)
    with torch.no_grad():
        clean = views.exact(x)
    if loss == "dlr" and clean.shape[1] < 3:
        raise ValueError(f"the DLR loss needs at least 3 classes, the model has {clean.shape[1]}")
    box = claim_trace()
    rows = BatchRecorder(clean, y, lambda z, t: _loss(z, t, loss)) if box is not None else None
    out = x.clone()
    open_ = clean.argmax(dim=1) == y  # correct and not broken yet
    best = torch.full((len(x),), float("-inf"), device=x.device, dtype=x.dtype)
    total = restarts * steps
    done = 0
    reported = 0

    def tick(step: int, _steps: int) -> None:
        nonlocal reported
        reported = done + step
        if callback is not None:
            callback(reported, total)

    for r in range(restarts if steps > 0 and eps > 0 else 0):
        where = open_.nonzero().squeeze(1)
        if where.numel() == 0:
            break
        x_r, f_r, broken = _apgd_run(
            views,
            x[where],
            y[where],
            eps=eps,
            steps=steps,
            kind=loss,
            rho=rho,
            random_start=random_start,
            generator=generator,
            rows=rows,
            where=where,
            tick=tick,
        )
        keep = broken | (f_r > best[where])
        out[where[keep]] = x_r[keep]
        best[where[keep]] = f_r[keep]
        open_[where[broken]] = False
        done += steps
        log.debug(
            "apgd-%s restart %d/%d: %d of %d images broken",
            loss,
            r + 1,
            restarts,
            int(broken.sum()),
            where.numel(),
        )
    if callback is not None and reported < total:
        callback(total, total)
    x_adv = project_linf(out, x, eps).detach().contiguous()
    if box is not None and rows is not None:
        box.trace = rows.trace()
    return x_adv
