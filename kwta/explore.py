"""Small computations behind the interactive explorer (``app/``).

The Streamlit pages only render; everything they compute is a call into
:mod:`kwta`. This module holds what the pages need beyond :mod:`kwta.attacks`
and :mod:`kwta.analysis`:

- :func:`activation_demo`: one vector through ReLU, max-pool, LWTA and k-WTA
  (the paper's Fig. 2), with :func:`parse_vector` / :func:`random_vector`;
- :func:`attack_with_trace`: PGD on one image with its per-step trace (Fig. 3a/b),
  clean/adversarial predictions and a live per-step callback;
- :func:`winner_map`, :func:`activation_layers`, :func:`pattern_change_by_ratio`:
  activation patterns of one layer and how they move with ε across γ (Sec. 3);
- :func:`split_at_jumps`: a 1-D curve broken at its discontinuities (Fig. 1);
- :func:`summarize_card`, :func:`paper_reference`, :func:`default_pair`,
  :func:`landscape_selection`: model-zoo bookkeeping and the paper's Table 1/2;
- :func:`records_to_csv`, :func:`landscape_to_csv`, :func:`to_uint8`,
  :func:`from_uint8`, :func:`amplify_perturbation`: export helpers.

Nothing here modifies a model it is given (no parameter, buffer, ratio, mode
or hook change): models are shared by every session of the app.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import KWTA, set_ratio
from .analysis import Landscape, PatternChange, activation_patterns, pattern_change
from .attacks import Trace, pgd_linf
from .functional import check_ratio, k_from_ratio, kwta, lwta

__all__ = [
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "ActivationDemo",
    "AttackRun",
    "LiveCallback",
    "ModelSummary",
    "PaperRow",
    "WinnerMap",
    "activation_demo",
    "activation_layers",
    "amplify_perturbation",
    "attack_with_trace",
    "default_pair",
    "finish_run",
    "from_uint8",
    "jump_segments",
    "landscape_selection",
    "landscape_to_csv",
    "paper_reference",
    "parse_vector",
    "pattern_change_by_ratio",
    "published_metrics",
    "random_vector",
    "records_to_csv",
    "split_at_jumps",
    "summarize_card",
    "to_uint8",
    "twin_of",
    "winner_map",
]

#: Longest vector :func:`parse_vector` accepts (the Fig. 2 demo is about small vectors).
MAX_VECTOR = 64


# --------------------------------------------------------------------------- Fig. 2


@dataclass(frozen=True, eq=False)
class ActivationDemo:
    """One vector through the four activations of the paper's Fig. 2.

    Attributes:
        x: ``(N,)`` the input.
        relu: ``(N,)`` ReLU output.
        maxpool: ``(ceil(N / group_size),)`` max over each group (downsampled; the
            last group may be shorter).
        lwta: ``(N,)`` local winner-take-all: each group keeps its maximum.
        kwta: ``(N,)`` k-WTA: the ``k`` largest entries of the whole vector are kept.
        k: Number of k-WTA winners, ``max(1, floor(γ·N))``.
        ratio: Sparsity ratio γ.
        group_size: Group size of max-pool and LWTA.
    """

    x: Tensor
    relu: Tensor
    maxpool: Tensor
    lwta: Tensor
    kwta: Tensor
    k: int
    ratio: float
    group_size: int

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers."""
        return {
            "x": self.x.tolist(),
            "relu": self.relu.tolist(),
            "maxpool": self.maxpool.tolist(),
            "lwta": self.lwta.tolist(),
            "kwta": self.kwta.tolist(),
            "k": self.k,
            "ratio": self.ratio,
            "group_size": self.group_size,
        }


def activation_demo(
    values: Sequence[float] | Tensor, *, ratio: float, group_size: int = 2
) -> ActivationDemo:
    """Apply ReLU, max-pooling, LWTA and k-WTA to one vector (Fig. 2).

    Args:
        values: The ``N`` input values (``N ≥ 1``).
        ratio: k-WTA sparsity ratio γ in (0, 1]; ``k = max(1, floor(γ·N))``.
        group_size: Group size of max-pooling and LWTA (≥ 1). LWTA needs ``N``
            divisible by it; a ragged last group is padded with ``-inf`` here so
            that any ``N`` works (the padding never wins).

    Returns:
        An :class:`ActivationDemo` (float64 tensors).

    Raises:
        ValueError: Empty or non-finite input, bad ratio or group size.
    """
    x = torch.as_tensor(values, dtype=torch.float64).reshape(-1).clone()
    if x.numel() == 0:
        raise ValueError("the vector is empty")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the vector must hold finite numbers")
    ratio = check_ratio(ratio)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group size must be a positive int, got {group_size!r}")
    n = x.numel()
    groups = math.ceil(n / group_size)
    padded = torch.full((groups * group_size,), -math.inf, dtype=torch.float64)
    padded[:n] = x
    # ``+ 0.0`` turns the -0.0 of masked negative entries into 0.0 for display.
    return ActivationDemo(
        x=x,
        relu=x.clamp(min=0.0) + 0.0,
        maxpool=padded.view(groups, group_size).amax(dim=1),
        lwta=lwta(x.view(1, -1), group_size).view(-1) + 0.0,
        kwta=kwta(x.view(1, -1), ratio).view(-1) + 0.0,
        k=k_from_ratio(ratio, n),
        ratio=ratio,
        group_size=group_size,
    )


def parse_vector(text: str, *, max_len: int = MAX_VECTOR) -> list[float]:
    """Parse a user-typed vector such as ``"0.3, -1.2 2e-1; 4"``.

    Numbers may be separated by commas, semicolons or white space; brackets are ignored.

    Raises:
        ValueError: Nothing to parse, a token that is not a finite number, or more
            than ``max_len`` numbers. The message is meant for the user.
    """
    tokens = [t for t in re.split(r"[,;\s]+", text.strip().strip("[]()")) if t]
    if not tokens:
        raise ValueError("type at least one number, e.g. 0.5, -1.2, 2")
    if len(tokens) > max_len:
        raise ValueError(f"at most {max_len} numbers, got {len(tokens)}")
    out: list[float] = []
    for tok in tokens:
        try:
            v = float(tok)
        except ValueError:
            raise ValueError(f"{tok!r} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"{tok!r} is not a finite number")
        out.append(v)
    return out


def random_vector(n: int, seed: int = 0) -> list[float]:
    """``n`` standard-normal values rounded to 2 decimals (easy to read and edit), seeded."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_VECTOR:
        raise ValueError(f"n must be an int from 1 to {MAX_VECTOR}, got {n!r}")
    gen = torch.Generator().manual_seed(seed)
    return [round(float(v), 2) for v in torch.randn(n, generator=gen, dtype=torch.float64)]


# --------------------------------------------------------------------------- Fig. 3a/b


#: ``callback(step, steps, logits, linf)`` during :func:`attack_with_trace`: the rows of
#: the trace known so far, ``logits`` ``(t, C)`` and ``linf`` ``(t,)`` on the CPU.
LiveCallback = Callable[[int, int, Tensor, Tensor], None]


class _Tap(nn.Module):
    """Calls ``model`` and keeps every output (for one image); ``model`` is untouched."""

    def __init__(self, model: nn.Module, x: Tensor) -> None:
        super().__init__()
        self.inner = model
        self.x = x
        self.logits: list[Tensor] = []
        self.linf: list[Tensor] = []

    def forward(self, z: Tensor) -> Tensor:
        out = self.inner(z)
        self.logits.append(out.detach()[0].to("cpu", torch.float32))
        self.linf.append((z.detach() - self.x).abs().amax().to("cpu", torch.float32))
        return out

    def rows(self) -> tuple[Tensor, Tensor]:
        """Trace rows so far: the clean input, then iterates 1, 2, … (the start point
        ``x_0`` of step 1 is not a row of :class:`kwta.attacks.Trace`)."""
        keep = self.logits[:1] + self.logits[2:]
        lin = self.linf[:1] + self.linf[2:]
        return torch.stack(keep), torch.stack(lin)


@dataclass(frozen=True, eq=False)
class AttackRun:
    """PGD on one image with its per-step trace (the paper's Fig. 3a/b).

    Attributes:
        x: ``(1, 3, H, W)`` clean image in [0, 1] (CPU).
        x_adv: ``(1, 3, H, W)`` final PGD iterate (CPU, float32).
        trace: The :class:`kwta.attacks.Trace` (CPU): ``steps + 1`` rows, row 0 clean.
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
    def linf(self) -> float:
        """``‖x_adv − x‖∞``."""
        return float((self.x_adv - self.x).abs().amax())

    def to_dict(self, *, classes: Sequence[str] | None = None) -> dict[str, Any]:
        """Settings, predictions, the trace (one record per step) and ``x_adv`` as lists."""
        out: dict[str, Any] = {
            "attack": self.attack,
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
) -> AttackRun:
    """Untargeted L∞ PGD on one image, recording every step (Fig. 3a/b).

    Runs :func:`kwta.attacks.pgd_linf` with ``record=True`` on the model's device.
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
        loss: ``"ce"`` or ``"margin"`` (see :func:`kwta.attacks.attack_loss`).
        random_start: Start at a uniform random point of the ε-ball.
        seed: Seed of the random start.
        callback: Live per-step callback, see above.

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
    tap = _Tap(model, x1)

    def on_step(step: int, total: int) -> None:
        if callback is not None:
            logits, linf = tap.rows()
            callback(step, total, logits, linf)

    x_adv, trace = pgd_linf(
        tap,
        x1,
        y,
        eps=eps,
        alpha=alpha,
        steps=steps,
        random_start=random_start,
        loss=loss,
        record=True,
        generator=gen,
        callback=on_step,
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
    """Rows of dicts (e.g. :meth:`kwta.attacks.Trace.to_records`) as CSV text with a header.

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
    """A :class:`kwta.analysis.Landscape` in long form: ``e1,e2,loss`` per grid point."""
    e1, e2 = landscape.e1.tolist(), landscape.e2.tolist()
    loss = landscape.loss.tolist()
    rows = [
        {"e1": a, "e2": b, "loss": loss[i][j]} for i, a in enumerate(e1) for j, b in enumerate(e2)
    ]
    return records_to_csv(rows)


# --------------------------------------------------------------------------- Sec. 3


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
    """:func:`kwta.analysis.pattern_change` of one k-WTA network re-evaluated at several γ.

    A private deep copy of the model gets each γ in turn (:func:`kwta.set_ratio`,
    without retraining, as in :func:`kwta.analysis.gamma_sweep`); the model passed
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
        γ → :class:`kwta.analysis.PatternChange`, in the order given.

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


# --------------------------------------------------------------------------- Fig. 1


def split_at_jumps(
    x: Tensor | Sequence[float], y: Tensor | Sequence[float], jumps: Tensor | Sequence[float]
) -> tuple[list[float | None], list[float | None]]:
    """A sampled curve with a gap (``None``) at every jump, for line plots.

    Without gaps a plotting library joins the two sides of a discontinuity with a
    steep segment, which looks continuous. Each gap is inserted between the two
    samples that straddle a jump location.

    Args:
        x: Sorted sample positions.
        y: Values at ``x``.
        jumps: Jump locations (any order).

    Returns:
        ``(xs, ys)`` lists with ``None`` separators.
    """
    xs = [float(v) for v in torch.as_tensor(x, dtype=torch.float64).reshape(-1)]
    ys = [float(v) for v in torch.as_tensor(y, dtype=torch.float64).reshape(-1)]
    if len(xs) != len(ys):
        raise ValueError(f"x and y differ in length: {len(xs)} vs {len(ys)}")
    js = sorted(float(v) for v in torch.as_tensor(jumps, dtype=torch.float64).reshape(-1))
    out_x: list[float | None] = []
    out_y: list[float | None] = []
    j = 0
    for i, (a, b) in enumerate(zip(xs, ys, strict=True)):
        if i > 0:
            gap = False
            while j < len(js) and js[j] < a:
                gap = gap or js[j] >= xs[i - 1]
                j += 1
            if gap:
                out_x.append(None)
                out_y.append(None)
        out_x.append(a)
        out_y.append(b)
    return out_x, out_y


def jump_segments(
    x: Tensor | Sequence[float],
    y: Tensor | Sequence[float],
    locations: Tensor | Sequence[float],
    sizes: Tensor | Sequence[float],
) -> tuple[list[float | None], list[float | None]]:
    """Vertical segments marking jumps of a sampled curve, ``None``-separated (one plot trace).

    Each segment goes from the curve's value at the last sample left of the jump
    to that value plus the jump size (``f(right) − f(left)``).

    Args:
        x: Sorted sample positions.
        y: Values at ``x``.
        locations: Jump locations.
        sizes: Signed jump sizes, one per location.
    """
    xs = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    ys = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    locs = torch.as_tensor(locations, dtype=torch.float64).reshape(-1)
    szs = torch.as_tensor(sizes, dtype=torch.float64).reshape(-1)
    if locs.numel() != szs.numel():
        raise ValueError(f"{locs.numel()} locations but {szs.numel()} sizes")
    out_x: list[float | None] = []
    out_y: list[float | None] = []
    for loc, size in zip(locs.tolist(), szs.tolist(), strict=True):
        i = max(0, int(torch.searchsorted(xs, torch.tensor(loc, dtype=torch.float64))) - 1)
        left = float(ys[i])
        out_x += [loc, loc, None]
        out_y += [left, left + size, None]
    return out_x, out_y


# --------------------------------------------------------------------------- model zoo


@dataclass(frozen=True)
class PaperRow:
    """Published CIFAR-10 numbers for one setting (fractions; ``None``: not reported).

    Attributes:
        table: Where they come from, e.g. ``"Table 1"``.
        training: The paper's training label (Natural, AT, TRADES, FAT).
        activation: The paper's activation label (ReLU, k-WTA-0.1, LWTA-0.2, …).
        model: Architecture (ResNet-18 for Table 1).
        clean: A_std.
        pgd, cw, deepfool, mim, bb: Robust accuracy per attack (BB: transfer black-box).
        a_rob: A_rob, the worst case over the white-box attacks.
    """

    table: str
    training: str
    activation: str
    model: str
    clean: float
    a_rob: float
    pgd: float | None = None
    cw: float | None = None
    deepfool: float | None = None
    mim: float | None = None
    bb: float | None = None


def _t1(training: str, act: str, *v: float) -> PaperRow:
    clean, pgd, cw, df, mim, bb, arob = (x / 100.0 for x in v)
    return PaperRow("Table 1", training, act, "ResNet-18", clean, arob, pgd, cw, df, mim, bb)


#: Table 1 (CIFAR-10, ResNet-18, ε = 0.031): A_std, PGD, C&W, DeepFool, MIM, BB, A_rob.
PAPER_TABLE1: tuple[PaperRow, ...] = (
    _t1("Natural", "ReLU", 92.9, 0.0, 0.0, 1.5, 0.0, 18.9, 0.0),
    _t1("Natural", "k-WTA-0.1", 89.3, 13.3, 27.9, 55.6, 13.1, 62.6, 13.1),
    _t1("Natural", "k-WTA-0.2", 91.7, 4.2, 6.2, 47.8, 3.9, 66.8, 4.2),
    _t1("AT", "ReLU", 83.5, 46.3, 43.6, 46.8, 45.9, 71.0, 43.6),
    _t1("AT", "k-WTA-0.1", 78.9, 51.4, 64.4, 70.4, 50.7, 73.4, 50.7),
    _t1("AT", "k-WTA-0.2", 81.4, 48.4, 52.7, 66.1, 47.4, 73.5, 47.4),
    _t1("TRADES", "ReLU", 79.7, 49.8, 52.3, 57.6, 49.9, 70.6, 49.8),
    _t1("TRADES", "k-WTA-0.1", 76.6, 55.0, 62.2, 66.0, 57.5, 72.3, 55.0),
    _t1("TRADES", "k-WTA-0.2", 80.4, 51.5, 57.7, 63.9, 53.4, 74.7, 51.5),
    _t1("FAT", "ReLU", 82.6, 42.7, 44.4, 49.7, 41.6, 73.4, 41.6),
    _t1("FAT", "k-WTA-0.1", 78.4, 51.7, 66.3, 72.4, 49.1, 72.3, 49.1),
    _t1("FAT", "k-WTA-0.2", 82.8, 48.4, 60.5, 67.2, 46.7, 76.8, 46.7),
)

#: Table 2 (App. D.3), ResNet-18 rows with LWTA (A_std and A_rob only).
PAPER_TABLE2: tuple[PaperRow, ...] = (
    PaperRow("Table 2", "Natural", "LWTA-0.1", "ResNet-18", 0.828, 0.037),
    PaperRow("Table 2", "Natural", "LWTA-0.2", "ResNet-18", 0.846, 0.009),
    PaperRow("Table 2", "AT", "LWTA-0.1", "ResNet-18", 0.714, 0.466),
    PaperRow("Table 2", "AT", "LWTA-0.2", "ResNet-18", 0.787, 0.431),
)

#: Fast AT (FGSM from a random start, the zoo's cheap stand-in for Madry's PGD-AT) is
#: compared with the paper's AT rows.
_METHOD_TO_PAPER = {
    "natural": "Natural",
    "pgd": "AT",
    "trades": "TRADES",
    "free": "FAT",
    "fgsm": "AT",
}
_METHOD_LABEL = {
    "natural": "natural",
    "pgd": "PGD adversarial training (AT)",
    "trades": "TRADES",
    "free": "free adversarial training (FAT)",
    "fgsm": "fast adversarial training (FGSM + random start, Wong et al. 2020)",
}
_ATTACKS = ("pgd", "mim", "cw", "deepfool")
#: Adversarial training methods, in the order the app prefers them for "AT" panels.
ADVERSARIAL_METHODS: tuple[str, ...] = ("pgd", "fgsm", "free", "trades")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _int(v: Any) -> int | None:
    f = _num(v)
    return int(f) if f is not None else None


@dataclass(frozen=True)
class ModelSummary:
    """What the model zoo shows about one model card (missing fields are ``None``).

    Attributes:
        name: Model name.
        arch: Architecture name.
        width: First-stage channels.
        act: ``"relu"``, ``"kwta"`` or ``"lwta"``.
        ratio: k-WTA γ (``None`` otherwise).
        group_size: LWTA group size (``None`` otherwise).
        method: Training method key (natural, pgd, trades, free).
        method_label: Human-readable training method.
        epochs: Training epochs as recorded.
        clean: Clean accuracy measured by us.
        clean_n: Test images behind ``clean``.
        robust: Attack → robust accuracy measured by us.
        a_rob: Worst case over the attacks evaluated, per image.
        robust_n: Images behind the robust numbers.
        eps: L∞ radius of the robust evaluation.
        activation_label: E.g. ``"k-WTA-0.1"``, ``"ReLU"``, ``"LWTA-0.1"`` (the paper's labels).
        description: The card's description, if any.
    """

    name: str
    arch: str
    width: int | None
    act: str
    ratio: float | None
    group_size: int | None
    method: str | None
    method_label: str
    epochs: int | None
    clean: float | None
    clean_n: int | None
    robust: dict[str, float] = field(default_factory=dict)
    a_rob: float | None = None
    robust_n: int | None = None
    eps: float | None = None
    activation_label: str = ""
    description: str = ""


def summarize_card(card: Mapping[str, Any]) -> ModelSummary:
    """Read a model card tolerantly (cards written by ``kwta train``/``kwta evaluate`` or by hand).

    Metrics are looked up as ``metrics.clean_accuracy`` (else ``clean``, else the
    training-time ``test_clean_accuracy``), ``metrics.robust_accuracy.<attack>``
    (else ``metrics.<attack>``) and ``metrics.A_rob`` (else ``a_rob``).
    """
    kw = card.get("arch_kwargs") or {}
    act = str(kw.get("act", "relu")).lower()
    act_kw = kw.get("act_kwargs") or {}
    ratio = _num(act_kw.get("ratio")) if act == "kwta" else None
    if act == "kwta" and ratio is None:
        ratio = 0.1  # the KWTA module's default
    group = _int(act_kw.get("group_size", 10)) if act == "lwta" else None
    training = card.get("training") or {}
    method = training.get("method") if isinstance(training, Mapping) else None
    method = str(method).lower() if method else None
    epochs_raw = training.get("epochs") if isinstance(training, Mapping) else None
    if isinstance(epochs_raw, Mapping):
        epochs_raw = epochs_raw.get("effective_epochs", epochs_raw.get("main"))
    epochs = _int(epochs_raw)
    m = card.get("metrics") or {}
    clean = _num(m.get("clean_accuracy", m.get("clean", m.get("test_clean_accuracy"))))
    clean_n = m.get("clean_n", m.get("test_clean_n", m.get("n")))
    ra_raw = m.get("robust_accuracy")
    ra: Mapping[str, Any] = ra_raw if isinstance(ra_raw, Mapping) else {}
    robust: dict[str, float] = {}
    for a in _ATTACKS:
        v = _num(ra.get(a, m.get(a)))
        if v is not None:
            robust[a] = v
    a_rob = _num(m.get("A_rob", m.get("a_rob")))
    if act == "kwta":
        label = f"k-WTA-{ratio:g}"
    elif act == "lwta":
        label = f"LWTA-{1.0 / float(group):g}" if group else "LWTA"
    else:
        label = "ReLU" if act == "relu" else act

    return ModelSummary(
        name=str(card.get("name", "?")),
        arch=str(card.get("arch", "?")),
        width=_int(kw.get("width")),
        act=act,
        ratio=ratio,
        group_size=group,
        method=method,
        method_label=_METHOD_LABEL.get(method or "", method or "unknown"),
        epochs=epochs,
        clean=clean,
        clean_n=_int(clean_n),
        robust=robust,
        a_rob=a_rob,
        robust_n=_int(m.get("robust_n")),
        eps=_num(m.get("eps")),
        activation_label=label,
        description=str(card.get("description", "")),
    )


def paper_reference(summary: ModelSummary) -> PaperRow | None:
    """The paper's CIFAR-10 ResNet-18 row for the same activation and training method.

    Table 1 for ReLU and k-WTA-0.1/0.2 under natural, AT, TRADES and FAT
    training; Table 2 for LWTA-0.1/0.2 (natural, AT). ``None`` when the paper
    has no such row (other γ, other methods, another architecture). The paper's
    networks are width 64; a row is returned for any width (compare with care).
    """
    if summary.arch != "resnet18" or summary.method not in _METHOD_TO_PAPER:
        return None
    training = _METHOD_TO_PAPER[summary.method]
    for row in PAPER_TABLE1 + PAPER_TABLE2:
        if row.training == training and row.activation == summary.activation_label:
            return row
    return None


def published_metrics(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The paper's numbers for a card's setting, in the card's own metric names.

    What :func:`kwta.evaluate.update_card` stores as the card's ``published``
    block, beside the measured ``metrics`` (fractions; ``None``: not reported).
    ``None`` when the paper has no row for the setting.
    """
    row = paper_reference(summarize_card(card))
    if row is None:
        return None

    def r(v: float | None) -> float | None:  # the paper's one decimal, as a fraction
        return None if v is None else round(v, 4)

    return {
        "source": (
            f"Xiao, Zhong, Zheng (ICLR 2020), {row.table}: CIFAR-10, {row.model} at width 64, "
            f"ε = 0.031, {row.training} training, {row.activation} (quoted, not reproduced)"
        ),
        "training": row.training,
        "activation": row.activation,
        "clean_accuracy": r(row.clean),
        "robust_accuracy": {
            "pgd": r(row.pgd),
            "mim": r(row.mim),
            "cw": r(row.cw),
            "deepfool": r(row.deepfool),
        },
        "black_box": r(row.bb),
        "A_rob": r(row.a_rob),
    }


def _pick(
    cards: Mapping[str, Mapping[str, Any]], act: str, method: str | None, ratio: float | None
) -> str | None:
    summaries = [(n, summarize_card(c)) for n, c in cards.items()]
    pool = [(n, s) for n, s in summaries if s.act == act]
    for want_method, want_ratio in ((method, ratio), (method, None), (None, ratio), (None, None)):
        for n, s in pool:
            if want_method is not None and s.method != want_method:
                continue
            if want_ratio is not None and s.ratio is not None and abs(s.ratio - want_ratio) > 1e-9:
                continue
            return n
    return None


def default_pair(cards: Mapping[str, Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """The default ReLU-vs-k-WTA comparison: naturally trained ReLU and k-WTA-0.1 if present.

    Falls back to any ReLU / any k-WTA model (in card order); ``None`` where there is none.
    """
    return _pick(cards, "relu", "natural", None), _pick(cards, "kwta", "natural", 0.1)


def twin_of(cards: Mapping[str, Mapping[str, Any]], name: str) -> str | None:
    """The ReLU model trained the same way as ``name``: the source of its transfer attack.

    Tramèr et al. (NeurIPS 2020) and the paper's App. D.3 transfer adversarial
    examples from an undefended twin. ``None`` for a ReLU model, an unknown
    name, or when the zoo has no ReLU model of the same architecture and width
    trained with the same method.
    """
    if name not in cards:
        return None
    s = summarize_card(cards[name])
    if s.act == "relu":
        return None
    same = {
        k: v
        for k, v in cards.items()
        if (o := summarize_card(v)).method == s.method and (o.arch, o.width) == (s.arch, s.width)
    }
    return _pick(same, "relu", s.method, None)


def landscape_selection(cards: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Fig. 5's panels where available: ReLU and k-WTA(-0.1), natural and adversarially trained.

    The adversarial panels take PGD-AT models, else free-AT, else TRADES ones
    (the first method for which the zoo has a model).

    Returns:
        Up to four distinct names; if no adversarially trained model exists, the
        natural pair (or whatever :func:`default_pair` finds).
    """
    methods = {summarize_card(v).method for v in cards.values()}
    adversarial = next((m for m in ADVERSARIAL_METHODS if m in methods), "pgd")
    out: list[str] = []
    for method in ("natural", adversarial):
        for act, ratio in (("relu", None), ("kwta", 0.1)):
            same = {k: v for k, v in cards.items() if summarize_card(v).method == method}
            n = _pick(same, act, method, ratio)
            if n is not None and n not in out:
                out.append(n)
    if not out:
        out = [n for n in default_pair(cards) if n is not None]
    return out
