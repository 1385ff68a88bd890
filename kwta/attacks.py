"""White-box attacks under the paper's L∞ threat model (Sec. 4, App. D.1).

Xiao, Zhong, Zheng (ICLR 2020) evaluate k-WTA and ReLU networks with PGD, C&W,
DeepFool and MIM, run through Foolbox with the settings of App. D.1, at
``eps = 0.031`` for CIFAR-10 pixels in [0, 1]. This module re-implements those
attacks in plain PyTorch, in the style of Foolbox 3:

- hyper-parameters are keyword-only and the norm is in the name
  (:func:`pgd_linf`, :func:`fgsm_linf`, :func:`mim_linf`, :func:`cw_l2`,
  :func:`deepfool_linf`);
- every attack returns adversarial *pixels*, projected onto the L∞ ε-ball around
  ``x`` and clamped to [0, 1] (models normalise inside, see
  :class:`models.common.Normalize`);
- gradients are taken with :func:`torch.autograd.grad` w.r.t. the input only:
  the model (its parameters, their ``.grad``, its train/eval mode) is never
  touched, so put it in eval mode first;
- randomness (the random start) comes from an optional ``generator``, so runs
  are reproducible; the global RNG is not used when one is given;
- attacks work under :func:`torch.no_grad` (not under :func:`torch.inference_mode`,
  whose tensors cannot take gradients) and on whatever device ``x`` is on.

:data:`ATTACKS` maps names to functions and :data:`PAPER_SETTINGS` holds the
App. D.1 hyper-parameters, so ``ATTACKS[name](model, x, y, **PAPER_SETTINGS[name])``
runs the paper's attack; :func:`run_attack` does the same in batches.
:func:`pgd_linf` and :func:`mim_linf` can record a :class:`Trace` (logits, loss,
perturbation size per step) — the data behind the paper's Fig. 3a/b.
:func:`transfer_matrix` builds the paper's Table 3 (App. D.3).
"""

from __future__ import annotations

import inspect
import logging
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .utils import batches

__all__ = [
    "ATTACKS",
    "PAPER_SETTINGS",
    "LossKind",
    "ProgressCallback",
    "Trace",
    "attack_loss",
    "cw_l2",
    "deepfool_linf",
    "fgsm_linf",
    "is_correct",
    "mim_linf",
    "pgd_linf",
    "robust_accuracy",
    "run_attack",
    "transfer_attack",
    "transfer_matrix",
]

log = logging.getLogger(__name__)

#: The attacker's loss: cross-entropy or the logit margin (see :func:`attack_loss`).
LossKind = Literal["ce", "margin"]

#: ``callback(step, steps)``: called after each attack step, ``step`` in ``1..steps``.
ProgressCallback = Callable[[int, int], None]


# --------------------------------------------------------------------------- losses and helpers


def attack_loss(logits: Tensor, y: Tensor, kind: LossKind = "ce") -> Tensor:
    """Per-sample loss that an untargeted attacker *maximises*.

    Args:
        logits: ``(B, C)`` model outputs.
        y: ``(B,)`` true labels.
        kind: ``"ce"`` — cross-entropy ``−log softmax(z)_y``; ``"margin"`` —
            ``max_{j≠y} z_j − z_y``, the C&W logit margin, positive exactly when
            the sample is misclassified.

    Returns:
        ``(B,)`` losses.

    Raises:
        ValueError: Unknown ``kind``.
    """
    if kind == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if kind == "margin":
        return _best_other(logits, y) - logits.gather(1, y[:, None]).squeeze(1)
    raise ValueError(f"unknown attack loss {kind!r}; choose 'ce' or 'margin'")


def _best_other(logits: Tensor, y: Tensor) -> Tensor:
    """``max_{j≠y} z_j`` per row."""
    return logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)


def _project(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """Exact projection onto ``{x' : ‖x' − x‖∞ ≤ eps} ∩ [0, 1]^d``."""
    return torch.clamp(x_adv, (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0))


def _check(x: Tensor, y: Tensor, eps: float) -> None:
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if x.dim() < 2 or y.shape != (x.shape[0],):
        raise ValueError(
            f"expected x of shape (B, ...) and y of shape (B,); got {tuple(x.shape)}, "
            f"{tuple(y.shape)}"
        )
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError("inputs must be pixels in [0, 1]; models normalise inside")


def _check_steps(steps: int, name: str = "steps") -> None:
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"{name} must be a non-negative int, got {steps!r}")


def _input_grad(
    model: nn.Module, x_adv: Tensor, y: Tensor, kind: LossKind
) -> tuple[Tensor, Tensor]:
    """Logits at ``x_adv`` and the gradient of the summed attack loss w.r.t. ``x_adv`` only."""
    with torch.enable_grad():
        xr = x_adv.detach().requires_grad_(True)
        logits = model(xr)
        (grad,) = torch.autograd.grad(attack_loss(logits, y, kind).sum(), xr)
    return logits.detach(), grad


def _uniform(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """Uniform noise in ``[−eps, eps]`` shaped like ``x``, drawn on the generator's device."""
    device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    return (2.0 * u - 1.0) * eps


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor, batch_size: int | None = None) -> Tensor:
    if batch_size is None or len(x) <= batch_size:
        return model(x).argmax(dim=1)
    return torch.cat([model(x[s]).argmax(dim=1) for s in batches(len(x), batch_size)])


# --------------------------------------------------------------------------- trace


@dataclass(frozen=True)
class Trace:
    """Per-step record of an iterative attack (what the paper's Fig. 3a/b plots).

    Index 0 is the *clean* input (δ = 0, even with a random start); index ``t``
    is the iterate after step ``t``. Tensors are detached and live on the
    attacked input's device.

    Attributes:
        logits: ``(steps + 1, B, C)`` logits.
        loss: ``(steps + 1, B)`` the attack loss (the kind the attack maximised).
        linf: ``(steps + 1, B)`` perturbation size ``‖x_t − x‖∞``.
        pred: ``(steps + 1, B)`` predicted classes.
        labels: ``(B,)`` true labels, if known.
        queries: ``(steps + 1, B)`` model evaluations spent on each sample up to
            step ``t`` (forward passes, plus one per backward pass for white-box
            gradients), for attacks that count them; ``None`` otherwise.
    """

    logits: Tensor
    loss: Tensor
    linf: Tensor
    pred: Tensor
    labels: Tensor | None = None
    queries: Tensor | None = None

    @property
    def steps(self) -> int:
        """Number of attack steps (rows minus the clean one)."""
        return int(self.logits.shape[0]) - 1

    @property
    def num_samples(self) -> int:
        """Batch size ``B``."""
        return int(self.logits.shape[1])

    def correct(self) -> Tensor:
        """``(steps + 1, B)`` bool: still classified correctly at step ``t``.

        Raises:
            ValueError: The trace has no labels.
        """
        if self.labels is None:
            raise ValueError("this trace has no labels")
        return self.pred == self.labels[None, :]

    def cpu(self) -> Trace:
        """A copy with every tensor on the CPU (for caching and plotting)."""
        moved: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            moved[f.name] = None if value is None else value.detach().cpu()
        return Trace(**moved)

    def sample(self, i: int) -> Trace:
        """The trace of sample ``i`` alone (batch dimension kept, ``B = 1``)."""
        if not -self.num_samples <= i < self.num_samples:
            raise IndexError(f"sample {i} out of range for a batch of {self.num_samples}")
        i %= self.num_samples
        sl = slice(i, i + 1)
        return Trace(
            logits=self.logits[:, sl],
            loss=self.loss[:, sl],
            linf=self.linf[:, sl],
            pred=self.pred[:, sl],
            labels=None if self.labels is None else self.labels[sl],
            queries=None if self.queries is None else self.queries[:, sl],
        )

    def to_numpy(self) -> dict[str, np.ndarray]:
        """The fields as NumPy arrays (on the CPU), e.g. for ``np.savez``."""
        out = {
            "logits": self.logits.detach().cpu().numpy(),
            "loss": self.loss.detach().cpu().numpy(),
            "linf": self.linf.detach().cpu().numpy(),
            "pred": self.pred.detach().cpu().numpy(),
        }
        if self.labels is not None:
            out["labels"] = self.labels.detach().cpu().numpy()
        if self.queries is not None:
            out["queries"] = self.queries.detach().cpu().numpy()
        return out

    def to_records(self) -> list[dict[str, float | int]]:
        """One flat dict per (step, sample), for CSV/JSON export or a data frame.

        Keys: ``step``, ``sample``, ``label`` (``-1`` if unknown), ``pred``,
        ``loss``, ``linf``, ``queries`` (when counted) and ``logit_0 … logit_{C−1}``.
        """
        a = self.to_numpy()
        labels = a.get("labels")
        queries = a.get("queries")
        rows: list[dict[str, float | int]] = []
        for t in range(self.steps + 1):
            for b in range(self.num_samples):
                row: dict[str, float | int] = {
                    "step": t,
                    "sample": b,
                    "label": int(labels[b]) if labels is not None else -1,
                    "pred": int(a["pred"][t, b]),
                    "loss": float(a["loss"][t, b]),
                    "linf": float(a["linf"][t, b]),
                }
                if queries is not None:
                    row["queries"] = int(queries[t, b])
                row.update({f"logit_{c}": float(v) for c, v in enumerate(a["logits"][t, b])})
                rows.append(row)
        return rows


class _Recorder:
    """Collects the rows of a :class:`Trace`."""

    def __init__(self, x: Tensor, y: Tensor, kind: LossKind) -> None:
        self.x, self.y, self.kind = x, y, kind
        self.logits: list[Tensor] = []
        self.linf: list[Tensor] = []

    def add(self, x_t: Tensor, logits: Tensor) -> None:
        self.logits.append(logits.detach())
        self.linf.append((x_t - self.x).flatten(1).abs().amax(dim=1))

    def trace(self) -> Trace:
        logits = torch.stack(self.logits)
        steps, b = logits.shape[:2]
        loss = attack_loss(logits.flatten(0, 1), self.y.repeat(steps), self.kind).view(steps, b)
        return Trace(
            logits=logits,
            loss=loss,
            linf=torch.stack(self.linf),
            pred=logits.argmax(dim=2),
            labels=self.y.detach().clone(),
        )


# --------------------------------------------------------------------------- sign-gradient attacks


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
) -> tuple[Tensor, Trace | None]:
    """Projected sign-gradient ascent; with ``decay`` set, on the MIM momentum."""
    _check(x, y, eps)
    _check_steps(steps)
    if alpha < 0:
        raise ValueError(f"step size alpha must be >= 0, got {alpha}")
    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.long)
    rec = _Recorder(x, y, loss) if record else None
    if rec is not None:
        with torch.no_grad():
            rec.add(x, model(x))
    # no steps, no start either: the result is x, as its one-row trace says
    start = random_start and steps > 0
    x_adv = _project(x + _uniform(x, eps, generator), x, eps) if start else x.clone()
    momentum = torch.zeros_like(x) if decay is not None else None
    for step in range(1, steps + 1):
        logits, grad = _input_grad(model, x_adv, y, loss)
        if rec is not None and step > 1:  # logits of the previous iterate, already computed
            rec.add(x_adv, logits)
        if momentum is not None and decay is not None:
            # Dong et al. (2018), Eq. 6: g ← μ·g + ∇/‖∇‖₁. The mean |∇| is ‖∇‖₁ up to a
            # constant factor, which leaves every sign(g) unchanged.
            l1 = grad.abs().flatten(1).mean(dim=1).clamp(min=1e-12)
            momentum = decay * momentum + grad / l1.view(-1, *([1] * (x.dim() - 1)))
            grad = momentum
        x_adv = _project(x_adv + alpha * grad.sign(), x, eps)
        if callback is not None:
            callback(step, steps)
    trace = None
    if rec is not None:
        if steps > 0:
            with torch.no_grad():
                rec.add(x_adv, model(x_adv))
        trace = rec.trace()
    return x_adv.detach(), trace


@overload
def pgd_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = ...,
    loss: LossKind = ...,
    record: Literal[False] = ...,
    generator: torch.Generator | None = ...,
    callback: ProgressCallback | None = ...,
) -> Tensor: ...
@overload
def pgd_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = ...,
    loss: LossKind = ...,
    record: Literal[True],
    generator: torch.Generator | None = ...,
    callback: ProgressCallback | None = ...,
) -> tuple[Tensor, Trace]: ...
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
    record: bool = False,
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
) -> Tensor | tuple[Tensor, Trace]:
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
        record: Also return a :class:`Trace` of every iterate.
        generator: Source of the random start (global RNG if ``None``).
        callback: ``callback(step, steps)`` after each step (progress bars).

    Returns:
        The final iterate ``x_adv`` (Madry et al./Foolbox return the last step, not
        the best one), or ``(x_adv, trace)`` when ``record`` is true.
    """
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
        record=record,
        generator=generator,
        callback=callback,
    )
    return (x_adv, trace) if trace is not None else x_adv


def fgsm_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    loss: LossKind = "ce",
    callback: ProgressCallback | None = None,
) -> Tensor:
    """Fast gradient sign method (Goodfellow et al., ICLR 2015): one step of size ``eps``.

    Args:
        model: Classifier taking pixels in [0, 1] (eval mode).
        x: ``(B, ...)`` clean inputs in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius (and step size).
        loss: Loss to maximise, see :func:`attack_loss`.
        callback: ``callback(1, 1)`` once done.

    Returns:
        ``clip_{[0,1]}(x + eps · sign ∇ L(x, y))``.
    """
    return pgd_linf(
        model, x, y, eps=eps, alpha=eps, steps=1, random_start=False, loss=loss, callback=callback
    )


@overload
def mim_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    decay: float = ...,
    random_start: bool = ...,
    loss: LossKind = ...,
    record: Literal[False] = ...,
    generator: torch.Generator | None = ...,
    callback: ProgressCallback | None = ...,
) -> Tensor: ...
@overload
def mim_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    decay: float = ...,
    random_start: bool = ...,
    loss: LossKind = ...,
    record: Literal[True],
    generator: torch.Generator | None = ...,
    callback: ProgressCallback | None = ...,
) -> tuple[Tensor, Trace]: ...
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
    record: bool = False,
    generator: torch.Generator | None = None,
    callback: ProgressCallback | None = None,
) -> Tensor | tuple[Tensor, Trace]:
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
        record: Also return a :class:`Trace` of every iterate.
        generator: Source of the random start, if any.
        callback: ``callback(step, steps)`` after each step.

    Returns:
        The final iterate, or ``(x_adv, trace)`` when ``record`` is true.
    """
    if decay < 0:
        raise ValueError(f"decay must be >= 0, got {decay}")
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
        record=record,
        generator=generator,
        callback=callback,
    )
    return (x_adv, trace) if trace is not None else x_adv


# --------------------------------------------------------------------------- minimisation attacks


def cw_l2(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int = 20,
    binary_search_steps: int = 5,
    lr: float = 0.01,
    initial_const: float = 0.01,
    confidence: float = 0.0,
    select: Literal["linf", "l2"] = "linf",
    callback: ProgressCallback | None = None,
) -> Tensor:
    """Carlini–Wagner L2 attack (Carlini & Wagner, IEEE S&P 2017), as in Foolbox 3.

    Minimises ``‖x' − x‖₂² + c · max(z_y − max_{j≠y} z_j + confidence, 0)`` over
    ``x' = (tanh(w) + 1) / 2`` with Adam in ``w``-space, restarting from ``x`` for
    each of ``binary_search_steps`` values of the per-sample constant ``c``:
    ×10 while no adversarial point was found, then bisection. The defaults are
    the paper's App. D.1 settings (5 binary-search steps, 20 iterations,
    learning rate 0.01, initial constant 0.01); Foolbox's ``abort_early`` is not
    implemented (it couples the samples of a batch).

    C&W is an L2 *minimum-norm* attack. The paper evaluates every attack under
    the L∞ threat model with ``eps = 0.031``, so the result is finally
    **projected onto the L∞ ε-ball around x (and [0, 1])**; a C&W point that
    needed more than ``eps`` in some pixel may stop being adversarial there and
    then counts as a failure.
    Which adversarial iterate is kept is set by ``select``: ``"linf"`` (default)
    keeps the one of smallest L∞ distance, the one most likely to survive that
    projection; ``"l2"`` keeps the smallest-L2 one, C&W's own choice and the
    closer match to the paper, whose evaluation kept the smallest-L2 point and
    counted it only if its L∞ distance was within ε. ``"linf"`` is the stronger
    attack under the same budget (``tests/test_attacks.py`` checks it breaks at
    least as many images).

    Args:
        model: Classifier taking pixels in [0, 1] (eval mode).
        x: ``(B, ...)`` clean inputs in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius of the final projection.
        steps: Adam iterations per binary-search step.
        binary_search_steps: Number of values of ``c`` tried.
        lr: Adam learning rate.
        initial_const: First ``c``.
        confidence: Margin κ by which the point must be misclassified.
        select: Keep the adversarial iterate of smallest ``"linf"`` or ``"l2"`` norm.
        callback: ``callback(i, binary_search_steps · steps)`` after each iteration.

    Returns:
        Per sample, the adversarial point of smallest norm found (else the last
        iterate), projected onto the L∞ ε-ball and [0, 1].
    """
    _check(x, y, eps)
    _check_steps(steps)
    _check_steps(binary_search_steps, "binary_search_steps")
    if select not in ("linf", "l2"):
        raise ValueError(f"select must be 'linf' or 'l2', got {select!r}")
    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.long)
    n = x.shape[0]
    view = (-1,) + (1,) * (x.dim() - 1)
    w0 = torch.atanh((2.0 * x - 1.0) * 0.999999)
    consts = torch.full((n,), float(initial_const), device=x.device, dtype=x.dtype)
    lower = torch.zeros_like(consts)
    upper = torch.full_like(consts, float("inf"))
    best = x.clone()
    best_norm = torch.full_like(consts, float("inf"))
    last = x.clone()
    beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
    total, done = binary_search_steps * steps, 0
    for _ in range(binary_search_steps):
        delta = torch.zeros_like(x)
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        found = torch.zeros(n, dtype=torch.bool, device=x.device)
        for t in range(1, steps + 1):
            with torch.enable_grad():
                d = delta.detach().requires_grad_(True)
                x_new = (torch.tanh(w0 + d) + 1.0) / 2.0
                logits = model(x_new)
                z_y = logits.gather(1, y[:, None]).squeeze(1)
                hinge = (z_y - _best_other(logits, y) + confidence).clamp(min=0.0)
                sq_norm = (x_new - x).flatten(1).pow(2).sum(dim=1)
                (grad,) = torch.autograd.grad((sq_norm + consts * hinge).sum(), d)
            with torch.no_grad():
                x_new = x_new.detach()
                shifted = logits.detach().scatter_add(
                    1, y[:, None], torch.full_like(z_y[:, None], confidence)
                )
                is_adv = shifted.argmax(dim=1) != y
                found |= is_adv
                if select == "l2":
                    norm = sq_norm.detach()
                else:
                    norm = (x_new - x).flatten(1).abs().amax(dim=1)
                better = is_adv & (norm < best_norm)
                best = torch.where(better.view(view), x_new, best)
                best_norm = torch.where(better, norm, best_norm)
                last = x_new
                # Adam (Kingma & Ba 2015) on delta, as Foolbox 3's AdamOptimizer.
                m = beta1 * m + (1 - beta1) * grad
                v = beta2 * v + (1 - beta2) * grad.square()
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                delta = delta - lr * m_hat / (v_hat.sqrt() + adam_eps)
            done += 1
            if callback is not None:
                callback(done, total)
        upper = torch.where(found, torch.minimum(upper, consts), upper)
        lower = torch.where(found, lower, torch.maximum(lower, consts))
        consts = torch.where(upper.isinf(), consts * 10.0, (lower + upper) / 2.0)
    out = torch.where(best_norm.isinf().view(view), last, best)
    return _project(out, x, eps).detach()


def _deepfool_step(
    model: nn.Module,
    x: Tensor,
    x_adv: Tensor,
    y: Tensor,
    others: Tensor,
    p_total: Tensor,
    overshoot: float,
) -> tuple[Tensor, Tensor, bool]:
    """One L∞ DeepFool step; returns the new iterate, the new ``p`` and whether all are fooled."""
    view = (-1,) + (1,) * (x.dim() - 1)
    k = others.shape[1]
    with torch.enable_grad():
        xr = x_adv.detach().requires_grad_(True)
        logits = model(xr)
        is_adv = logits.detach().argmax(dim=1) != y
        if bool(is_adv.all()):
            return x_adv, p_total, True
        # z_k − z_y for the candidate classes: negative until the boundary is crossed.
        diffs = logits.gather(1, others) - logits.gather(1, y[:, None])
        grads = torch.stack(
            [
                torch.autograd.grad(diffs[:, j].sum(), xr, retain_graph=j < k - 1)[0]
                for j in range(k)
            ],
            dim=1,
        )  # (B, k, ...)
    with torch.no_grad():
        dist = diffs.detach().abs() / (grads.flatten(2).abs().sum(dim=2) + 1e-8)
        best = dist.argmin(dim=1)
        rows = torch.arange(x.shape[0], device=x.device)
        p_total = p_total + (dist[rows, best] + 1e-4).view(view) * grads[rows, best].sign()
        x_new = (x + (1.0 + overshoot) * p_total).clamp(0.0, 1.0)
        x_adv = torch.where(is_adv.view(view), x_adv, x_new)
    return x_adv, p_total, False


def deepfool_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int = 20,
    candidates: int = 10,
    overshoot: float = 0.02,
    callback: ProgressCallback | None = None,
) -> Tensor:
    """L∞ DeepFool (Moosavi-Dezfooli et al., CVPR 2016, Alg. 3 with q = 1), as in Foolbox 3.

    At each step the decision boundary towards each of the ``candidates − 1``
    classes ranked highest on the clean input (besides ``y``) is linearised;
    the closest one in L∞ — ``|z_k − z_y| / ‖∇(z_k − z_y)‖₁`` — is stepped to
    along ``sign ∇(z_k − z_y)``. Steps accumulate in ``p``; the iterate is
    ``clip_{[0,1]}(x + (1 + overshoot) · p)`` and samples already misclassified
    are frozen. The paper uses 20 steps and 10 candidates ("sub-samples",
    App. D.1); Foolbox's default overshoot is 0.02.

    DeepFool is a minimum-norm attack; to evaluate it under the paper's L∞
    threat model its result is finally **projected onto the L∞ ε-ball around x
    (and [0, 1])**.

    Args:
        model: Classifier taking pixels in [0, 1] (eval mode).
        x: ``(B, ...)`` clean inputs in [0, 1].
        y: ``(B,)`` true labels.
        eps: L∞ radius of the final projection.
        steps: Maximum number of steps.
        candidates: Classes considered, counting the true one (capped at the
            number of classes).
        overshoot: Relative overshoot of the accumulated perturbation.
        callback: ``callback(step, steps)`` after each step.

    Returns:
        The DeepFool point projected onto the L∞ ε-ball and [0, 1].
    """
    _check(x, y, eps)
    _check_steps(steps)
    if candidates < 2:
        raise ValueError(f"DeepFool needs at least 2 candidate classes, got {candidates}")
    x = x.detach()
    y = y.detach().to(device=x.device, dtype=torch.long)
    with torch.no_grad():
        clean_logits = model(x)
    k = min(candidates, clean_logits.shape[1]) - 1
    # The k highest-ranked wrong classes on the clean input.
    others = clean_logits.scatter(1, y[:, None], float("-inf")).topk(k, dim=1).indices
    p_total = torch.zeros_like(x)
    x_adv = x.clone()
    finished = False
    for step in range(1, steps + 1):
        if not finished:
            x_adv, p_total, finished = _deepfool_step(
                model, x, x_adv, y, others, p_total, overshoot
            )
        if callback is not None:
            callback(step, steps)
    return _project(x_adv, x, eps).detach()


# --------------------------------------------------------------------------- registry


#: Attack name → function; all take ``(model, x, y, *, eps, ...)``.
ATTACKS: dict[str, Callable[..., Any]] = {
    "fgsm": fgsm_linf,
    "pgd": pgd_linf,
    "mim": mim_linf,
    "cw": cw_l2,
    "deepfool": deepfool_linf,
}

#: App. D.1 settings for CIFAR-10 (``eps = 0.031`` for pixels in [0, 1]); Foolbox
#: defaults for everything the paper does not state (MIM decay 1, C&W confidence 0,
#: DeepFool overshoot 0.02). FGSM is not in the paper; it gets the same ``eps``.
PAPER_SETTINGS: dict[str, dict[str, Any]] = {
    "fgsm": {"eps": 0.031},
    "pgd": {"eps": 0.031, "alpha": 0.003, "steps": 40, "random_start": True},
    "mim": {"eps": 0.031, "alpha": 0.003, "steps": 20, "decay": 1.0},
    "cw": {
        "eps": 0.031,
        "steps": 20,
        "binary_search_steps": 5,
        "lr": 0.01,
        "initial_const": 0.01,
        "confidence": 0.0,
    },
    "deepfool": {"eps": 0.031, "steps": 20, "candidates": 10, "overshoot": 0.02},
}


def _batch_callback(outer: ProgressCallback, batch: int, n_batches: int) -> ProgressCallback:
    """Map one batch's ``(step, steps)`` onto the whole run's ``(done, total)``."""

    def inner(step: int, steps: int) -> None:
        outer(batch * steps + step, n_batches * steps)

    return inner


def _resolve(name: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """The attack function and default settings of ``name``: the paper's or an adaptive one."""
    key = name.lower()
    if key in ATTACKS:
        return ATTACKS[key], dict(PAPER_SETTINGS[key])
    # The adaptive attacks build on this module, so their registry is imported here.
    from .suite import ADAPTIVE_ATTACKS, ADAPTIVE_SETTINGS

    if key in ADAPTIVE_ATTACKS:
        return ADAPTIVE_ATTACKS[key], dict(ADAPTIVE_SETTINGS[key])
    raise ValueError(
        f"unknown attack {name!r}; choose from {sorted(ATTACKS)} or the adaptive "
        f"{sorted(ADAPTIVE_ATTACKS)}"
    )


def _takes(fn: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(fn).parameters


def run_attack(
    name: str,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = 256,
    callback: ProgressCallback | None = None,
    **overrides: Any,
) -> Tensor:
    """Run attack ``name`` with the paper's settings, in batches, on ``x``'s device.

    Args:
        name: A key of :data:`ATTACKS` (run with :data:`PAPER_SETTINGS`) or of
            :data:`kwta.suite.ADAPTIVE_ATTACKS` (with :data:`kwta.suite.ADAPTIVE_SETTINGS`).
        model: Classifier in eval mode, on ``x``'s device.
        x: ``(N, ...)`` clean inputs in [0, 1].
        y: ``(N,)`` true labels.
        batch_size: Samples per batch.
        callback: ``callback(done, total)`` with attack steps summed over batches.
        **overrides: Replace or add hyper-parameters of the default settings
            (e.g. ``steps=10``, ``eps=8/255``, ``generator=...``).

    Returns:
        ``(N, ...)`` adversarial inputs.

    Raises:
        ValueError: Unknown attack, or ``record`` among the overrides (call
            :func:`pgd_linf` directly for a trace).
    """
    fn, defaults = _resolve(name)
    if overrides.get("record"):
        raise ValueError("run_attack does not record traces; call the attack directly")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    params = {**defaults, **overrides}
    y = y.to(x.device)
    if len(x) == 0:
        return x.detach().clone()
    slices = list(batches(len(x), batch_size))
    out: list[Tensor] = []
    for b, sl in enumerate(slices):
        inner = None if callback is None else _batch_callback(callback, b, len(slices))
        out.append(fn(model, x[sl], y[sl], callback=inner, **params))
        log.debug("%s: batch %d/%d done", name, b + 1, len(slices))
    return torch.cat(out)


# --------------------------------------------------------------------------- evaluation


def is_correct(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int | None = None) -> Tensor:
    """``(N,)`` bool: the model's arg-max equals the label (no gradients)."""
    return _predict(model, x, batch_size) == y.to(x.device)


def robust_accuracy(
    model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor, *, batch_size: int | None = None
) -> float:
    """Fraction of samples classified correctly on *both* ``x`` and ``x_adv``.

    A sample the model already gets wrong counts as broken (δ = 0 is in the
    ε-ball), as in Foolbox and RobustBench. Returns 0.0 for an empty batch.
    """
    if len(x) == 0:
        return 0.0
    ok = is_correct(model, x, y, batch_size=batch_size)
    ok &= is_correct(model, x_adv, y, batch_size=batch_size)
    return float(ok.float().mean())


def transfer_attack(
    source: nn.Module,
    target: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attack: str = "pgd",
    **kw: Any,
) -> dict[str, Any]:
    """Craft adversarial examples on ``source`` and evaluate them on ``target`` (App. D.3).

    Args:
        source: Model the (white-box) attack is run on.
        target: Model the examples are transferred to.
        x: Clean inputs in [0, 1].
        y: Labels.
        attack: A key of :data:`ATTACKS`.
        **kw: Passed to :func:`run_attack` (overrides of the paper's settings,
            ``batch_size``, ``generator``, ``callback``).

    Returns:
        ``{"x_adv": Tensor, "source_accuracy": float, "target_accuracy": float,
        "target_clean_accuracy": float}``; the accuracies are
        :func:`robust_accuracy` values.
    """
    x_adv = run_attack(attack, source, x, y, **kw)
    bs = kw.get("batch_size")
    return {
        "x_adv": x_adv,
        "source_accuracy": robust_accuracy(source, x, y, x_adv, batch_size=bs),
        "target_accuracy": robust_accuracy(target, x, y, x_adv, batch_size=bs),
        "target_clean_accuracy": robust_accuracy(target, x, y, x, batch_size=bs),
    }


def transfer_matrix(
    models: dict[str, nn.Module],
    x: Tensor,
    y: Tensor,
    *,
    attack: str = "pgd",
    seed: int | None = 0,
    **kw: Any,
) -> dict[str, dict[str, float]]:
    """Robust accuracy of every target under examples crafted on every source (Table 3).

    Each source is attacked once (with a fresh generator seeded by ``seed``, so
    every source sees the same random start); all models are then evaluated on
    those examples.

    In the paper's Table 3 the diagonal transfers between two *independently
    trained* copies of the same model; here the diagonal is the source itself,
    i.e. the white-box robust accuracy. For the paper's diagonal, add the
    second copy under its own name and read the off-diagonal entry.

    Args:
        models: Name → model (eval mode, on ``x``'s device).
        x: Clean inputs in [0, 1].
        y: Labels.
        attack: A key of :data:`ATTACKS`.
        seed: Seed of each source's random start; ``None`` uses the global RNG.
        **kw: Passed to :func:`run_attack` (not ``generator``: use ``seed``).

    Returns:
        ``matrix[target][source]`` = :func:`robust_accuracy` of ``target`` on the
        examples crafted on ``source``.
    """
    if "generator" in kw:
        raise TypeError("transfer_matrix seeds each source itself; pass seed= instead of generator")
    key = attack.lower()
    if key not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose from {sorted(ATTACKS)}")
    bs = kw.get("batch_size")
    matrix: dict[str, dict[str, float]] = {t: {} for t in models}
    for s_name, source in models.items():
        extra: dict[str, Any] = {}
        if seed is not None and _takes(ATTACKS[key], "generator"):
            extra["generator"] = torch.Generator().manual_seed(seed)
        x_adv = run_attack(key, source, x, y, **extra, **kw)
        for t_name, target in models.items():
            matrix[t_name][s_name] = robust_accuracy(target, x, y, x_adv, batch_size=bs)
    return matrix
