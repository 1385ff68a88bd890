"""Sign-gradient L∞ attacks: PGD, FGSM and MIM (App. D.1).

One shared loop (:func:`_sign_iterate`) takes a step along the sign of the
(optionally momentum-averaged) input gradient and projects back onto the
ε-ball; :func:`pgd_linf` and :func:`mim_linf` record a :class:`Trace` under
:func:`kwta.attacks._core.traced`
(logits, loss and perturbation size per step): the data of the paper's Fig. 3a/b.
The steps run on the fast path chosen by ``precision`` (:mod:`kwta.attacks._steps`); the
trace's logits are always fp32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kwta.attacks._core import (
    LossKind,
    ProgressCallback,
    Recorder,
    Trace,
    check_inputs,
    check_steps,
    claim_trace,
    input_grad,
    project_linf,
    uniform_start,
)
from kwta.attacks._steps import step_models

__all__ = [
    "fgsm_linf",
    "mim_linf",
    "pgd_linf",
]


def _sign_iterate(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool,
    loss: LossKind,
    decay: float | None,
    record: bool,
    generator: torch.Generator | None,
    callback: ProgressCallback | None,
    precision: str,
) -> tuple[Tensor, Trace | None]:
    """Projected sign-gradient ascent; with ``decay`` set, on the MIM momentum."""
    check_inputs(x, y, eps)
    check_steps(steps)
    if alpha < 0:
        raise ValueError(f"step size alpha must be >= 0, got {alpha}")
    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.long)
    views = step_models(model, x, precision)
    rec = Recorder(x, y, loss) if record else None
    if rec is not None:
        with torch.no_grad():
            rec.add(x, views.exact(x))
    # no steps, no start either: the result is x, as its one-row trace says
    start = random_start and steps > 0
    x_adv = project_linf(x + uniform_start(x, eps, generator), x, eps) if start else x.clone()
    momentum = torch.zeros_like(x) if decay is not None else None
    for step in range(1, steps + 1):
        logits, grad = input_grad(views.step, x_adv, y, loss)
        if rec is not None and step > 1:  # the previous iterate's logits, fp32
            if views.reduced:
                with torch.no_grad():
                    logits = views.exact(x_adv)
            rec.add(x_adv, logits)
        if momentum is not None and decay is not None:
            # Dong et al. (2018), Eq. 6: g ← μ·g + ∇/‖∇‖₁. The mean |∇| is ‖∇‖₁ up to a
            # constant factor, which leaves every sign(g) unchanged.
            l1 = grad.abs().flatten(1).mean(dim=1).clamp(min=1e-12)
            momentum = decay * momentum + grad / l1.view(-1, *([1] * (x.dim() - 1)))
            grad = momentum
        x_adv = project_linf(x_adv + alpha * grad.sign(), x, eps)
        if callback is not None:
            callback(step, steps)
    trace = None
    if rec is not None:
        if steps > 0:
            with torch.no_grad():
                rec.add(x_adv, views.exact(x_adv))
        trace = rec.trace()
    return x_adv.detach().contiguous(), trace


def pgd_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = True,
    loss: LossKind = "ce",
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
    precision: str = "auto",
) -> Tensor:
    """L∞ projected gradient descent (Madry et al., ICLR 2018), untargeted.

    ``x_{t+1} = Π_{B∞(x, eps) ∩ [0,1]}(x_t + alpha · sign ∇ L(x_t, y))``, started at
    ``x`` plus uniform noise in ``[−eps, eps]`` when ``random_start``. The paper's
    setting (App. D.1): ``eps = 0.031``, 40 steps of 0.003, random start.

    Args:
        model: Classifier taking pixels in [0, 1]; put it in eval mode first.
        x: ``(B, ...)`` clean inputs in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius.
        alpha: Step size.
        steps: Number of steps.
        random_start: Start at a uniform random point of the ε-ball.
        loss: Loss to maximise, see :func:`attack_loss`.
        generator: Source of the random start (global RNG if ``None``).
        callback: ``callback(step, steps)`` after each step (progress bars).
        precision: The steps' autocast (``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``; see
            :func:`~kwta.attacks._steps.resolve_step_precision`); the trace is fp32 always.

    Returns:
        The final iterate ``x_adv`` (Madry et al./Foolbox return the last step, not
        the best one). ``traced(pgd_linf)(…)`` also returns the :class:`Trace`.
    """
    box = claim_trace()
    x_adv, trace = _sign_iterate(
        model,
        x,
        y,
        eps=eps,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        loss=loss,
        decay=None,
        record=box is not None,
        generator=generator,
        callback=callback,
        precision=precision,
    )
    if box is not None:
        box.trace = trace
    return x_adv


def fgsm_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    loss: LossKind = "ce",
    callback: ProgressCallback | None = None,
    precision: str = "auto",
) -> Tensor:
    """Fast gradient sign method (Goodfellow et al., ICLR 2015): one step of size ``eps``.

    Args:
        model: Classifier taking pixels in [0, 1] (eval mode).
        x: ``(B, ...)`` clean inputs in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius (and step size).
        loss: Loss to maximise, see :func:`attack_loss`.
        callback: ``callback(1, 1)`` once done.
        precision: The steps' autocast (``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``; see
            :func:`~kwta.attacks._steps.resolve_step_precision`); the trace is fp32 always.

    Returns:
        ``clip_{[0,1]}(x + eps · sign ∇ L(x, y))``.
    """
    return pgd_linf(
        model,
        x,
        y,
        eps=eps,
        alpha=eps,
        steps=1,
        random_start=False,
        loss=loss,
        callback=callback,
        precision=precision,
    )


def mim_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    decay: float = 1.0,
    random_start: bool = False,
    loss: LossKind = "ce",
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
    precision: str = "auto",
) -> Tensor:
    """L∞ momentum iterative method, MI-FGSM (Dong et al., CVPR 2018, Alg. 1).

    ``g_{t+1} = decay · g_t + ∇ L(x_t) / ‖∇ L(x_t)‖₁`` and
    ``x_{t+1} = Π(x_t + alpha · sign g_{t+1})``, with the projection onto the
    ε-ball and [0, 1] after every step. The paper's setting (App. D.1):
    ``eps = 0.031``, 20 steps of 0.003; Foolbox's defaults ``decay = 1`` and no
    random start.

    Args:
        model: Classifier taking pixels in [0, 1] (eval mode).
        x: ``(B, ...)`` clean inputs in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius.
        alpha: Step size.
        steps: Number of iterations.
        decay: Momentum decay factor μ.
        random_start: Start at a uniform random point of the ε-ball (off in the
            original method).
        loss: Loss to maximise, see :func:`attack_loss`.
        generator: Source of the random start, if any.
        callback: ``callback(step, steps)`` after each step.
        precision: The steps' autocast (``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``; see
            :func:`~kwta.attacks._steps.resolve_step_precision`); the trace is fp32 always.

    Returns:
        The final iterate. ``traced(mim_linf)(…)`` also returns the :class:`Trace`.
    """
    if decay < 0:
        raise ValueError(f"decay must be >= 0, got {decay}")
    box = claim_trace()
    x_adv, trace = _sign_iterate(
        model,
        x,
        y,
        eps=eps,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        loss=loss,
        decay=decay,
        record=box is not None,
        generator=generator,
        callback=callback,
        precision=precision,
    )
    if box is not None:
        box.trace = trace
    return x_adv
