"""Every page's main computation as one record, and how to compare two runs of it.

The explorer's pages call the library in a handful of places (the button each page
is about). :data:`PAGE_ACTIONS` names those calls once, with the page defaults, so
that the page benchmark (``benchmarks/bench_pages.py``) and the GPU check
(``scripts/device_pages.py``: the same calls on CUDA and on the CPU, compared) run
exactly what the pages run.

A run's result is reduced to :class:`Probe` s — named tensors with a rule for
comparing them: ``"exact"`` (predictions, winner masks, counts) or ``"close"``
(logits and losses within ``rtol``/``atol``), and the share of elements that must
agree. k-WTA is discontinuous (Sec. 3, Theorem 1): a rounding difference between
two devices can flip a winner and with it a whole row of a loss landscape, so the
probes of a k-WTA model's landscape and patterns ask for most elements, not all;
attack trajectories follow gradient *signs* and may part after a few steps on
either architecture, so attacks are checked where they must agree — the clean
logits, that the adversarial image stays in the ε-ball, and the device's
adversarial image re-evaluated by the reference device (:func:`cross_check`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kwta import paper
from kwta.analysis.landscape import Landscape, loss_landscape
from kwta.analysis.masking import MaskingReport, masking_indicators
from kwta.analysis.patterns import PatternChange
from kwta.analysis.toy import ToyFit, toy_fit
from kwta.analysis.weights import LINE_ALPHAS, WeightLine, weight_line
from kwta.explorer.adaptive import adaptive_attack_with_trace, budget_schedule
from kwta.explorer.paths import DEFAULT_GRID, AttackPath, attack_path
from kwta.explorer.patterns import (
    DEFAULT_RATIOS,
    WinnerMap,
    activation_layers,
    pattern_change_sweep,
    winner_map,
)
from kwta.explorer.runs import AttackRun, attack_with_trace
from kwta.nn.activations import get_ratio

__all__ = [
    "ADAPTIVE_BUDGET",
    "LANDSCAPE_BATCH",
    "PAGE_ACTIONS",
    "ActionInputs",
    "PageAction",
    "Probe",
    "ProbeCheck",
    "compare_probes",
    "cross_check",
    "get_action",
    "own_prediction",
]

#: The adaptive page's default query budget per image (its ``DEFAULT_BUDGET``).
ADAPTIVE_BUDGET = 4000
#: The landscape page's batch of grid points per forward pass (halved on out-of-memory).
LANDSCAPE_BATCH = 256


@dataclass(frozen=True)
class ActionInputs:
    """What a page action runs on: one model, one image, a small balanced batch.

    Attributes:
        model: Classifier on pixels in [0, 1], eval mode, on the device to run on.
        x: ``(1, 3, H, W)`` one image on the model's device.
        label: Its true class.
        xs: ``(B, 3, H, W)`` a class-balanced batch on the model's device.
        ys: ``(B,)`` its labels.
    """

    model: nn.Module
    x: Tensor
    label: int
    xs: Tensor
    ys: Tensor

    @property
    def device(self) -> torch.device:
        """The device everything runs on."""
        return self.x.device


@dataclass(frozen=True)
class Probe:
    """One comparable part of a result.

    Attributes:
        name: What it is (``"clean logits"``, ``"loss grid"``…).
        value: The values, on the CPU (float64 for ``"close"``, integers/bools for ``"exact"``).
        kind: ``"exact"``: elements must be equal; ``"close"``: within
            ``atol + rtol·|reference|``.
        rtol: Relative tolerance of ``"close"``.
        atol: Absolute tolerance of ``"close"``.
        min_agree: Share of elements that must agree (1.0: all of them).
    """

    name: str
    value: Tensor
    kind: Literal["exact", "close"] = "close"
    rtol: float = 1e-3
    atol: float = 1e-4
    min_agree: float = 1.0


@dataclass(frozen=True)
class ProbeCheck:
    """A probe of one run compared with the same probe of a reference run.

    Attributes:
        name: The probe's name.
        kind: ``"exact"`` or ``"close"``.
        agree: Share of elements that agree.
        max_abs_diff: Largest absolute difference (0 for equal ``"exact"`` probes).
        min_agree: The share required.
        passed: ``agree ≥ min_agree`` (and equal shapes).
    """

    name: str
    kind: str
    agree: float
    max_abs_diff: float
    min_agree: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for JSON)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "agree": self.agree,
            "max_abs_diff": self.max_abs_diff,
            "min_agree": self.min_agree,
            "passed": self.passed,
        }


def compare_probes(reference: Sequence[Probe], other: Sequence[Probe]) -> list[ProbeCheck]:
    """Compare each probe of ``other`` with the reference's probe of the same name.

    The reference's rule (kind, tolerances, required share) applies.

    Raises:
        ValueError: The two runs do not have the same probe names.
    """
    ref = {p.name: p for p in reference}
    oth = {p.name: p for p in other}
    if list(ref) != list(oth):
        raise ValueError(f"probe names differ: {list(ref)} vs {list(oth)}")
    out = []
    for name, r in ref.items():
        a, b = r.value, oth[name].value
        if a.shape != b.shape:
            out.append(ProbeCheck(name, r.kind, 0.0, math.inf, r.min_agree, False))
            continue
        if r.kind == "exact":
            ok = a == b
            diff = (a.double() - b.double()).abs() if a.numel() else a.double()
        else:
            a64, b64 = a.double(), b.double()
            diff = (a64 - b64).abs()
            ok = diff <= r.atol + r.rtol * a64.abs()
            ok &= torch.isfinite(b64) | (a64 == b64)
        agree = float(ok.double().mean()) if ok.numel() else 1.0
        max_diff = float(diff.max()) if diff.numel() else 0.0
        out.append(ProbeCheck(name, r.kind, agree, max_diff, r.min_agree, agree >= r.min_agree))
    return out


def _cpu(t: Tensor) -> Tensor:
    return t.detach().cpu()


def _is_kwta(model: nn.Module) -> bool:
    return get_ratio(model) is not None


def _attack_probes(run: AttackRun, inputs: ActionInputs) -> list[Probe]:
    return [
        Probe("clean logits", _cpu(run.trace.logits[0]).double(), rtol=1e-3, atol=1e-3),
        Probe("clean prediction", _cpu(run.trace.pred[0]), kind="exact"),
        Probe(
            "adversarial image in the ε-ball", torch.tensor([run.linf <= run.eps + 1e-6]), "exact"
        ),
    ]


def _path_probes(p: AttackPath, inputs: ActionInputs) -> list[Probe]:
    # the walk may part between devices (gradient signs), and its plane with it: checked are
    # the clean image's logits, the ε-ball, and that the walk starts at x with its pattern
    return [
        *_attack_probes(p.run, inputs),
        Probe("the walk starts at x", _cpu(p.plane.path[0]), "exact"),
        Probe("no pattern changed at x", _cpu(p.changed[:1]), "exact"),
    ]


def _landscape_probes(ls: Landscape, inputs: ActionInputs) -> list[Probe]:
    share = 0.95 if _is_kwta(inputs.model) else 0.99
    return [
        Probe("clean loss", torch.tensor([ls.clean_loss], dtype=torch.float64), atol=1e-3),
        Probe("gradient-sign direction g1", _cpu(ls.g1).to(torch.int8), "exact", min_agree=0.99),
        Probe("random direction g2", _cpu(ls.g2).to(torch.int8), "exact"),
        Probe("loss grid", _cpu(ls.loss).double(), rtol=1e-3, atol=1e-3, min_agree=share),
    ]


def _pattern_probes(
    result: tuple[WinnerMap, dict[str, PatternChange]], inputs: ActionInputs
) -> list[Probe]:
    wm, curves = result
    share = 0.999 if _is_kwta(inputs.model) else 1.0
    return [
        Probe("winner mask (clean)", _cpu(wm.clean), "exact", min_agree=share),
        Probe("winner mask (perturbed)", _cpu(wm.perturbed), "exact", min_agree=share),
        *(
            Probe(f"changed fraction vs ε, {k}", _cpu(pc.changed_fraction).double(), atol=0.01)
            for k, pc in curves.items()
        ),
    ]


def _adaptive_probes(run: AttackRun, inputs: ActionInputs) -> list[Probe]:
    return [
        Probe("clean logits", _cpu(run.trace.logits[0]).double(), rtol=1e-3, atol=1e-3),
        Probe(
            "adversarial image in the ε-ball", torch.tensor([run.linf <= run.eps + 1e-6]), "exact"
        ),
    ]


def _masking_probes(rep: MaskingReport, inputs: ActionInputs) -> list[Probe]:
    # Counts over the batch: an attack may end one image either side of the line.
    slack = 2.0 / max(1, rep.n)
    return [
        Probe("correctly classified", torch.tensor([rep.n_correct]), "exact"),
        Probe(
            "indicator values",
            torch.tensor([i.value for i in rep.indicators], dtype=torch.float64),
            rtol=0.0,
            atol=slack,
        ),
    ]


def _toy_probes(fit: ToyFit, inputs: ActionInputs) -> list[Probe]:
    return [
        Probe("k-WTA fit", _cpu(fit.kwta_dense).double(), rtol=1e-4, atol=1e-5, min_agree=0.99),
        Probe("ReLU fit", _cpu(fit.relu_dense).double(), rtol=1e-4, atol=1e-5),
        Probe("ReLU jumps", torch.tensor([len(fit.relu_jumps)]), "exact"),
    ]


def _weight_probes(wl: WeightLine, inputs: ActionInputs) -> list[Probe]:
    return [
        Probe("loss along the weight line", _cpu(wl.loss).double(), rtol=1e-3, atol=1e-3),
        Probe(
            "accuracy along the weight line", _cpu(wl.accuracy).double(), atol=2.0 / len(inputs.ys)
        ),
    ]


@dataclass(frozen=True)
class PageAction:
    """One page's main library call with the page's defaults.

    Attributes:
        key: Short identifier (``"attack"``, ``"landscape50"``…).
        page: The page it belongs to.
        what: What is computed, for tables.
        run: ``run(inputs)``: the library call.
        probes: ``probes(result, inputs)``: the comparable parts of a result.
        per_model: Runs once per model (``False``: once, on the toy MLP).
        repeats: Timed repetitions a benchmark should use (heavy actions: 1).
        batched: The call takes a batch size that :func:`kwta.explorer.jobs.retry_on_oom`
            may halve (the landscape page does).
    """

    key: str
    page: str
    what: str
    run: Callable[[ActionInputs], Any]
    probes: Callable[[Any, ActionInputs], list[Probe]]
    per_model: bool = True
    repeats: int | None = None
    batched: bool = False


def _attack(i: ActionInputs) -> AttackRun:
    return attack_with_trace(i.model, i.x, i.label, eps=paper.EPS, alpha=0.001, steps=40)


def _attack_path(i: ActionInputs) -> AttackPath:
    return attack_path(i.model, i.x, i.label, eps=paper.EPS, alpha=0.003, steps=40)


def _landscape(grid: int) -> Callable[[ActionInputs], Landscape]:
    def run(i: ActionInputs, batch_size: int = LANDSCAPE_BATCH) -> Landscape:
        return loss_landscape(i.model, i.x, i.label, grid=grid, batch_size=batch_size)

    return run


def _patterns(i: ActionInputs) -> tuple[WinnerMap, dict[str, PatternChange]]:
    layer = next(iter(activation_layers(i.model, i.x)))
    ratios = DEFAULT_RATIOS if _is_kwta(i.model) else ()
    curves = pattern_change_sweep(i.model, i.x, ratios, n_dirs=2, seed=0)
    return winner_map(i.model, i.x, layer, eps=0.002), curves


def _adaptive(i: ActionInputs) -> AttackRun:
    return adaptive_attack_with_trace(
        i.model,
        i.x,
        i.label,
        eps=paper.EPS,
        alpha=0.005,
        steps=20,
        sigma=8 / 255,
        samples=budget_schedule(ADAPTIVE_BUDGET, 20),
    )


def _masking(i: ActionInputs) -> MaskingReport:
    return masking_indicators(i.model, i.xs, i.ys, generator=torch.Generator().manual_seed(0))


def _weights(i: ActionInputs) -> WeightLine:
    return weight_line(i.model, i.xs, i.ys, alphas=LINE_ALPHAS)


def _toy(i: ActionInputs) -> ToyFit:
    return toy_fit(device=i.device)


#: The pages' main computations, in page order (Overview's Fig. 2 demo runs on the
#: CPU whatever the device and is not listed).
PAGE_ACTIONS: tuple[PageAction, ...] = (
    PageAction("attack", "Live attack", "PGD-40 + trace, 1 image", _attack, _attack_probes),
    PageAction(
        "landscape21",
        "Loss landscape",
        "loss landscape 21×21 (CPU default)",
        _landscape(21),
        _landscape_probes,
        batched=True,
    ),
    PageAction(
        "landscape50",
        "Loss landscape",
        "loss landscape 50×50 (paper, GPU default)",
        _landscape(50),
        _landscape_probes,
        repeats=1,
        batched=True,
    ),
    PageAction(
        "attack_path",
        "Attack path",
        f"PGD-40 + its {DEFAULT_GRID}×{DEFAULT_GRID} plane + patterns, 1 image",
        _attack_path,
        _path_probes,
        repeats=1,
    ),
    PageAction(
        "weights",
        "Loss landscape",
        "Fig. 3c weight line, 32 images",
        _weights,
        _weight_probes,
        repeats=1,
    ),
    PageAction(
        "patterns", "Activation patterns", "winner map + change vs ε", _patterns, _pattern_probes
    ),
    PageAction(
        "adaptive",
        "Is k-WTA really robust?",
        f"adaptive PGD, 20 steps, ≤ {ADAPTIVE_BUDGET} queries, 1 image",
        _adaptive,
        _adaptive_probes,
    ),
    PageAction(
        "masking",
        "Is k-WTA really robust?",
        "masking check, 32 images",
        _masking,
        _masking_probes,
        repeats=1,
    ),
    PageAction(
        "toy",
        "1-D toy fit",
        "toy fit (8 points, width 64, 2 000 steps)",
        _toy,
        _toy_probes,
        per_model=False,
        repeats=1,
    ),
)


def get_action(key: str) -> PageAction:
    """The action called ``key``.

    Raises:
        KeyError: Unknown key (the message lists the known ones).
    """
    for a in PAGE_ACTIONS:
        if a.key == key:
            return a
    raise KeyError(f"unknown page action {key!r}; known: {[a.key for a in PAGE_ACTIONS]}")


def cross_check(result: Any, reference_model: nn.Module) -> list[Probe]:
    """The adversarial image of an attack run on one device, classified on another.

    An attack's path may part between devices, but whatever image it ends on must
    get the same class from both: this re-evaluates ``result.x_adv`` with
    ``reference_model`` (the same weights on the reference device).

    Returns:
        ``[]`` for results without an adversarial image; else a probe holding the
        reference's prediction, to compare with :func:`own_prediction`.
    """
    if not isinstance(result, AttackRun):
        return []
    device = next(reference_model.parameters()).device
    with torch.no_grad():
        pred = reference_model(result.x_adv.to(device)).argmax(1).cpu()
    return [Probe("adversarial prediction, re-evaluated", pred, "exact")]


def own_prediction(result: Any) -> list[Probe]:
    """The prediction the run's own device gave its adversarial image (see :func:`cross_check`)."""
    if not isinstance(result, AttackRun):
        return []
    return [Probe("adversarial prediction, re-evaluated", torch.tensor([result.adv_pred]), "exact")]
