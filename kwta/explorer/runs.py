"""PGD on one image with its per-step trace (Fig. 3a/b), live callbacks, and
exports of runs (CSV, PNG pixels, an amplified perturbation).

Nothing here modifies a model it is given: models are shared by every session.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kwta.analysis.landscape import Landscape
from kwta.attacks._core import Trace, traced
from kwta.attacks._steps import steps_ran_in
from kwta.attacks.sign_gradient import pgd_linf

__all__ = [
    "AttackRun",
    "LiveCallback",
    "amplify_perturbation",
    "attack_with_trace",
    "finish_run",
    "from_uint8",
    "landscape_to_csv",
    "records_to_csv",
    "to_uint8",
]


#: ``callback(step, steps, logits, linf)`` during :func:`attack_with_trace`: the rows of
#: the trace known so far, ``logits`` ``(t, C)`` and ``linf`` ``(t,)`` on the CPU.
LiveCallback = Callable[[int, int, Tensor, Tensor], None]


class _Tap(nn.Module):
    """Calls ``model`` and keeps every output (for one image); ``model`` is untouched."""

    def __init__(
        self, model: nn.Module, x: Tensor, *, keep_path: bool = False, reduced: bool = False
    ) -> None:
        super().__init__()
        self.inner = model
        self.x = x
        self.keep_path = keep_path
        # reduced-precision steps: only the attack's fp32 forwards (its trace rows) are kept,
        # so no start-point forward is among them
        self.start_row = not reduced
        self.logits: list[Tensor] = []
        self.linf: list[Tensor] = []
        self.deltas: list[Tensor] = []

    def forward(self, z: Tensor) -> Tensor:
        out = self.inner(z)
        if torch.is_autocast_enabled(z.device.type):  # a reduced-precision step, not a row
            return out
        self.logits.append(out.detach()[0].to("cpu", torch.float32))
        self.linf.append((z.detach() - self.x).abs().amax().to("cpu", torch.float32))
        if self.keep_path:
            self.deltas.append((z.detach() - self.x)[0].to("cpu", torch.float32))
        return out

    def _rows(self, kept: list[Tensor]) -> list[Tensor]:
        return kept[:1] + kept[2:] if self.start_row else kept

    def path(self) -> Tensor:
        """The perturbations ``δ_t`` of the rows of :meth:`rows` (needs ``keep_path``)."""
        return torch.stack(self._rows(self.deltas))

    def rows(self) -> tuple[Tensor, Tensor]:
        """Trace rows so far: the clean input, then iterates 1, 2, … (the start point
        ``x_0`` of step 1 is not a row of :class:`kwta.attacks._core.Trace`)."""
        return torch.stack(self._rows(self.logits)), torch.stack(self._rows(self.linf))


@dataclass(frozen=True, eq=False)
class AttackRun:
    """PGD on one image with its per-step trace (the paper's Fig. 3a/b).

    Attributes:
        x: ``(1, 3, H, W)`` clean image in [0, 1] (CPU).
        x_adv: ``(1, 3, H, W)`` final PGD iterate (CPU, float32).
        trace: The :class:`kwta.attacks._core.Trace` (CPU): ``steps + 1`` rows, row 0 clean.
        label: The true class.
        clean_probs: ``(C,)`` softmax on the clean image.
        adv_probs: ``(C,)`` softmax on ``x_adv``.
        eps: L∞ radius.
        alpha: Step size.
        steps: Number of steps.
        loss: ``"ce"`` or ``"margin"``.
        random_start: Whether PGD started at a random point of the ε-ball.
        seed: Seed of the random start (and of the gradient estimator's noise).
        attack: The attack function's name (``"pgd_linf"``, ``"fd_pgd_linf"``, …).
        queries: Model evaluations the attack spent on the image, where counted.
        settings: Further hyper-parameters of the attack (estimator samples, σ, …).
        path: ``(steps + 1, 3, H, W)`` the perturbation ``x_t − x`` of every trace row
            (row 0 zeros), when the run was asked to keep it; for
            :func:`kwta.analysis.attack_plane.attack_plane`.
        precision: What the steps ran in (``"fp32"``, ``"bf16"``, ``"fp16"``); every
            number of the run (trace, probabilities, success) is fp32.
    """

    x: Tensor
    x_adv: Tensor
    trace: Trace
    label: int
    clean_probs: Tensor
    adv_probs: Tensor
    eps: float
    alpha: float
    steps: int
    loss: str
    random_start: bool
    seed: int
    attack: str = "pgd_linf"
    queries: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    path: Tensor | None = None
    precision: str = "fp32"

    @property
    def clean_pred(self) -> int:
        """Predicted class on the clean image."""
        return int(self.clean_probs.argmax())

    @property
    def adv_pred(self) -> int:
        """Predicted class on the adversarial image."""
        return int(self.adv_probs.argmax())

    @property
    def success(self) -> bool:
        """The attack's output is misclassified (an already wrong image counts, as in Foolbox)."""
        return self.adv_pred != self.label

    @property
    def first_misclassified(self) -> int | None:
        """The first step whose iterate is misclassified (0: the clean image); ``None``: none."""
        wrong = (self.trace.pred[:, 0] != self.label).nonzero()
        return int(wrong[0]) if len(wrong) else None

    @property
    def linf(self) -> float:
        """``‖x_adv − x‖∞``."""
        return float((self.x_adv - self.x).abs().amax())

    def to_dict(self, *, classes: Sequence[str] | None = None) -> dict[str, Any]:
        """Settings, predictions, the trace (one record per step) and ``x_adv`` as lists."""
        out: dict[str, Any] = {
            "attack": self.attack,
            "precision": self.precision,
            "queries": self.queries,
            "settings": dict(self.settings),
            "eps": self.eps,
            "alpha": self.alpha,
            "steps": self.steps,
            "loss": self.loss,
            "random_start": self.random_start,
            "seed": self.seed,
            "label": self.label,
            "clean_pred": self.clean_pred,
            "adv_pred": self.adv_pred,
            "success": self.success,
            "linf": self.linf,
            "clean_probs": self.clean_probs.tolist(),
            "adv_probs": self.adv_probs.tolist(),
            "trace": self.trace.to_records(),
            "x_adv": self.x_adv[0].tolist(),
        }
        if classes is not None:
            out["classes"] = list(classes)
        return out


def attack_with_trace(
    model: nn.Module,
    x: Tensor,
    label: int,
    *,
    eps: float,
    alpha: float,
    steps: int,
    loss: Literal["ce", "margin"] = "ce",
    random_start: bool = False,
    seed: int = 0,
    callback: LiveCallback | None = None,
    keep_path: bool = False,
    precision: str = "auto",
) -> AttackRun:
    """Untargeted L∞ PGD on one image, recording every step (Fig. 3a/b).

    Runs :func:`kwta.attacks.sign_gradient.pgd_linf` under :func:`kwta.attacks._core.traced`
    on the model's device.
    After each step ``callback(step, steps, logits, linf)`` receives the trace rows
    known so far (row 0 is the clean image), so a caller can draw the logits as
    the attack proceeds; the last call, after the attack, passes all
    ``steps + 1`` rows of the final trace.

    Args:
        model: Classifier on pixels in [0, 1], in eval mode; not modified.
        x: One image, ``(3, H, W)`` or ``(1, 3, H, W)``, in [0, 1].
        label: Its true class.
        eps: L∞ radius.
        alpha: Step size.
        steps: Number of steps (≥ 0).
        loss: ``"ce"`` or ``"margin"`` (see :func:`kwta.attacks._core.attack_loss`).
        random_start: Start at a uniform random point of the ε-ball.
        seed: Seed of the random start.
        callback: Live per-step callback, see above.
        keep_path: Also keep every iterate's perturbation (:attr:`AttackRun.path`).
        precision: The steps' precision (:func:`kwta.attacks._steps.resolve_step_precision`);
            the trace and every reported number are fp32.

    Returns:
        An :class:`AttackRun` of CPU tensors.

    Raises:
        ValueError: Bad image shape, label or attack parameters.
    """
    x1 = x.unsqueeze(0) if x.dim() == 3 else x
    if x1.dim() != 4 or x1.shape[0] != 1:
        raise ValueError(f"expected one image (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    device = next((p.device for p in model.parameters()), x1.device)
    x1 = x1.detach().to(device, torch.float32)
    y = torch.tensor([int(label)], device=device)
    gen = torch.Generator().manual_seed(int(seed))
    steps_in = steps_ran_in(precision, x1.device)
    tap = _Tap(model, x1, keep_path=keep_path, reduced=steps_in != "fp32")

    def on_step(step: int, total: int) -> None:
        if callback is not None:
            logits, linf = tap.rows()
            callback(step, total, logits, linf)

    x_adv, trace = traced(pgd_linf)(
        tap,
        x1,
        y,
        eps=eps,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        loss=loss,
        generator=gen,
        callback=on_step,
        precision=precision,
    )
    run = finish_run(
        model,
        x1,
        x_adv,
        trace,
        label,
        eps=float(eps),
        alpha=float(alpha),
        steps=int(steps),
        loss=loss,
        random_start=bool(random_start),
        seed=int(seed),
        path=tap.path() if keep_path else None,
        precision=steps_in,
    )
    if callback is not None:
        callback(steps, steps, run.trace.logits[:, 0], run.trace.linf[:, 0])
    return run


def finish_run(
    model: nn.Module, x1: Tensor, x_adv: Tensor, trace: Trace, label: int, **meta: Any
) -> AttackRun:
    """An :class:`AttackRun` of CPU tensors from one image's attack: the clean and final
    class probabilities, the trace, and ``meta`` (the run's settings, as fields)."""
    with torch.no_grad():
        clean_logits = model(x1)
        adv_logits = model(x_adv)
    return AttackRun(
        x=x1.cpu(),
        x_adv=x_adv.detach().cpu(),
        trace=trace.cpu(),
        label=int(label),
        clean_probs=F.softmax(clean_logits.float(), dim=1)[0].cpu(),
        adv_probs=F.softmax(adv_logits.float(), dim=1)[0].cpu(),
        **meta,
    )


def amplify_perturbation(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """The perturbation mapped to an image: ``0.5 + (x_adv − x) / (2·eps)``, clamped to [0, 1].

    Mid-grey is no change; ±eps become black/white per channel.
    """
    if eps <= 0:
        return torch.full_like(x, 0.5)
    return (0.5 + (x_adv - x) / (2.0 * eps)).clamp(0.0, 1.0)


def to_uint8(x: Tensor) -> np.ndarray:
    """One image in [0, 1], ``(3, H, W)`` or ``(1, 3, H, W)``, as ``uint8`` ``(3, H, W)``."""
    img = x.detach().to("cpu").reshape(-1, *x.shape[-3:])[0]
    return (img.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


def from_uint8(arr: np.ndarray) -> Tensor:
    """``uint8`` ``(3, H, W)`` → float32 ``(1, 3, H, W)`` in [0, 1] (exact for 8-bit images)."""
    a = np.asarray(arr)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"expected a uint8 array (3, H, W), got {a.dtype} {a.shape}")
    return torch.from_numpy(a.copy()).float().div(255.0).unsqueeze(0)


def records_to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of dicts (e.g. :meth:`kwta.attacks._core.Trace.to_records`) as CSV text with a header.

    The columns are the keys of the first row, in order; an empty input gives ``""``.
    """
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def landscape_to_csv(landscape: Landscape) -> str:
    """A :class:`kwta.analysis.landscape.Landscape` in long form: ``e1,e2,loss`` per grid point."""
    e1, e2 = landscape.e1.tolist(), landscape.e2.tolist()
    loss = landscape.loss.tolist()
    rows = [
        {"e1": a, "e2": b, "loss": loss[i][j]} for i, a in enumerate(e1) for j, b in enumerate(e2)
    ]
    return records_to_csv(rows)
