"""The core every attack builds on: losses, projection, input checks, input
gradients, random starts and the per-step :class:`Trace` (Sec. 4, App. D.1).

Attacks work on pixels in [0, 1] (models normalise inside), take gradients with
:func:`torch.autograd.grad` w.r.t. the input only (the model is never touched),
draw their randomness from an optional ``generator`` and run on ``x``'s device.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import Any, Literal, ParamSpec

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kwta.nn.precision import fast_view
from kwta.utils import batches

__all__ = [
    "BatchRecorder",
    "LossKind",
    "ProgressCallback",
    "Recorder",
    "Trace",
    "attack_loss",
    "batch_callback",
    "best_other",
    "check_inputs",
    "check_steps",
    "claim_trace",
    "input_grad",
    "is_correct",
    "linf_distance",
    "project_linf",
    "robust_accuracy",
    "traced",
    "uniform_start",
]


#: The attacker's loss: cross-entropy or the logit margin (see :func:`attack_loss`).
LossKind = Literal["ce", "margin"]


#: ``callback(step, steps)``: called after each attack step, ``step`` in ``1..steps``.
ProgressCallback = Callable[[int, int], None]


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
        return best_other(logits, y) - logits.gather(1, y[:, None]).squeeze(1)
    raise ValueError(f"unknown attack loss {kind!r}; choose 'ce' or 'margin'")


def best_other(logits: Tensor, y: Tensor) -> Tensor:
    """``max_{j≠y} z_j`` per row."""
    return logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)


def project_linf(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """Exact projection onto ``{x' : ‖x' − x‖∞ ≤ eps} ∩ [0, 1]^d``."""
    return torch.clamp(x_adv, (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0))


def check_inputs(x: Tensor, y: Tensor, eps: float) -> None:
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if x.dim() < 2 or y.shape != (x.shape[0],):
        raise ValueError(
            f"expected x of shape (B, ...) and y of shape (B,); got {tuple(x.shape)}, "
            f"{tuple(y.shape)}"
        )
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError("inputs must be pixels in [0, 1]; models normalise inside")


def check_steps(steps: int, name: str = "steps") -> None:
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"{name} must be a non-negative int, got {steps!r}")


def input_grad(model: nn.Module, x_adv: Tensor, y: Tensor, kind: LossKind) -> tuple[Tensor, Tensor]:
    """Logits at ``x_adv`` and the gradient of the summed attack loss w.r.t. ``x_adv`` only."""
    with torch.enable_grad():
        xr = x_adv.detach().requires_grad_(True)
        logits = model(xr)
        (grad,) = torch.autograd.grad(attack_loss(logits, y, kind).sum(), xr)
    return logits.detach(), grad


def uniform_start(x: Tensor, eps: float, generator: torch.Generator | None) -> Tensor:
    """Uniform noise in ``[−eps, eps]`` shaped like ``x``, drawn on the generator's device."""
    device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    return (2.0 * u - 1.0) * eps


@torch.no_grad()
def _predict(model: nn.Module, x: Tensor, batch_size: int | None = None) -> Tensor:
    view = fast_view(model, x)  # fp32, channels-last where safe
    if batch_size is None or len(x) <= batch_size:
        return view(x).argmax(dim=1)
    return torch.cat([view(x[s]).argmax(dim=1) for s in batches(len(x), batch_size)])


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


@dataclass
class TraceBox:
    """Where an attack run under :func:`traced` leaves its :class:`Trace`."""

    trace: Trace | None = None


_TRACE_BOX: ContextVar[TraceBox | None] = ContextVar("kwta_trace_box", default=None)
P = ParamSpec("P")


def claim_trace() -> TraceBox | None:
    """For an attack, at its start: the box :func:`traced` opened for it, or ``None``.

    The box goes to the first attack that claims it, so an attack that calls
    another one inside (a sub-attack, a restart) is recorded once, by the outer one.
    """
    box = _TRACE_BOX.get()
    if box is not None:
        _TRACE_BOX.set(None)
    return box


def traced(attack: Callable[P, Tensor]) -> Callable[P, tuple[Tensor, Trace]]:
    """The recording variant of an attack: same arguments, returns ``(x_adv, trace)``.

    ``traced(pgd_linf)(model, x, y, eps=…, alpha=…, steps=…)`` runs the attack and
    also returns the :class:`Trace` of every iterate (the paper's Fig. 3a/b data).
    Every attack keeps one signature and one return type; the trace travels through
    a context variable, so concurrent runs in other threads never see it.

    Raises:
        TypeError: ``attack`` does not record traces (it never claimed the box).
    """

    @functools.wraps(attack)
    def run(*args: P.args, **kwargs: P.kwargs) -> tuple[Tensor, Trace]:
        box = TraceBox()
        token = _TRACE_BOX.set(box)
        try:
            x_adv = attack(*args, **kwargs)
        finally:
            _TRACE_BOX.reset(token)
        if box.trace is None:
            name = getattr(attack, "__name__", repr(attack))
            raise TypeError(f"{name} does not record a trace")
        return x_adv, box.trace

    return run


class Recorder:
    """Collects the rows of a :class:`Trace`."""

    def __init__(self, x: Tensor, y: Tensor, kind: LossKind) -> None:
        self.x, self.y, self.kind = x, y, kind
        self.logits: list[Tensor] = []
        self.linf: list[Tensor] = []

    def add(self, x_t: Tensor, logits: Tensor) -> None:
        self.logits.append(logits.detach())
        self.linf.append(linf_distance(x_t, self.x))

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


def batch_callback(outer: ProgressCallback, batch: int, n_batches: int) -> ProgressCallback:
    """Map one batch's ``(step, steps)`` onto the whole run's ``(done, total)``."""

    def inner(step: int, steps: int) -> None:
        outer(batch * steps + step, n_batches * steps)

    return inner


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


def linf_distance(x_adv: Tensor, x: Tensor) -> Tensor:
    """``(B,)`` per-sample ``‖x_adv − x‖∞``."""
    return (x_adv - x).flatten(1).abs().amax(dim=1)


class BatchRecorder:
    """Rows of a :class:`Trace` for a whole batch that an attack updates image by image.

    Unlike :class:`Recorder` (one row per step of every image), an attack that leaves
    images alone (broken ones, or those a query did not improve) writes only the images
    it touched into :attr:`logits`, :attr:`linf` and :attr:`queries`, then calls
    :meth:`snapshot`; untouched images repeat their last row. Row 0 is the clean input.
    """

    def __init__(self, logits: Tensor, y: Tensor, loss: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.y, self.loss = y, loss
        self.logits = logits.detach().clone()
        self.linf = torch.zeros(len(y), device=logits.device, dtype=logits.dtype)
        self.queries = torch.zeros(len(y), device=logits.device, dtype=torch.long)
        self._rows: list[tuple[Tensor, Tensor, Tensor]] = []
        self.snapshot()

    def snapshot(self) -> None:
        """Close the current row."""
        self._rows.append((self.logits.clone(), self.linf.clone(), self.queries.clone()))

    def trace(self) -> Trace:
        """The rows so far, with the per-image query counts."""
        logits = torch.stack([r[0] for r in self._rows])
        steps, b = logits.shape[:2]
        loss = self.loss(logits.flatten(0, 1), self.y.repeat(steps)).view(steps, b)
        return Trace(
            logits=logits,
            loss=loss,
            linf=torch.stack([r[1] for r in self._rows]),
            pred=logits.argmax(dim=2),
            labels=self.y.detach().clone(),
            queries=torch.stack([r[2] for r in self._rows]),
        )
