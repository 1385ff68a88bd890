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

Two runs on the *same* device are compared exactly, every probe included: an action
also lists the whole result's numbers as probes marked ``same_device`` (the trace, the
adversarial image, the full grid), which :func:`compare_probes` checks only when asked
for ``exact`` — what ``kwta reproduce`` does when a result comes back to the device,
library and torch version that made it (:mod:`kwta.explorer.provenance`).

Every action declares its settings (:class:`Setting`: the page's default and the values
it accepts); :meth:`PageAction.run` takes any of them and refuses unknown names and
values of the wrong type or out of range, so a result file's settings are checked
before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from kwta import paper
from kwta.analysis import landscape as landscapes
from kwta.analysis.landscape import Landscape
from kwta.analysis.masking import MaskingReport, masking_indicators
from kwta.analysis.patterns import PatternChange
from kwta.analysis.toy import ToyFit, toy_fit
from kwta.analysis.weights import LINE_ALPHAS, GammaSweep, WeightLine, gamma_sweep, weight_line
from kwta.explorer.adaptive import adaptive_attack_with_trace, budget_schedule
from kwta.explorer.limits import MAX_FIT_STEPS, MAX_GRID, MAX_STEPS
from kwta.explorer.paths import DEFAULT_GRID, AttackPath, attack_path
from kwta.explorer.patterns import (
    DEFAULT_RATIOS,
    WinnerMap,
    activation_layers,
    pattern_change_sweep,
    winner_map,
)
from kwta.explorer.probes import Probe, ProbeCheck, Setting, SettingValue, compare_probes, shown
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
    "Setting",
    "SettingValue",
    "compare_probes",
    "cross_check",
    "get_action",
    "own_prediction",
]

#: The adaptive page's default query budget per image (its ``DEFAULT_BUDGET``).
ADAPTIVE_BUDGET = 4000
#: The landscape page's batch of grid points per forward pass (halved on out-of-memory).
LANDSCAPE_BATCH = 256
#: Most gradient samples per step an adaptive attack may ask for (a JSON file's bound).
MAX_QUERIES_PER_STEP = 1_000_000


@dataclass(frozen=True)
class ActionInputs:
    """What a page action runs on: one model, one image, a small balanced batch.

    Attributes:
        model: Classifier on pixels in [0, 1], eval mode, on the device to run on.
        x: ``(1, 3, H, W)`` one image on the model's device.
        label: Its true class.
        xs: ``(B, 3, H, W)`` a class-balanced batch on the model's device (the actions
            on many images; ``None`` where no action needs it).
        ys: ``(B,)`` its labels.
    """

    model: nn.Module
    x: Tensor
    label: int
    xs: Tensor | None = None
    ys: Tensor | None = None

    def batch(self) -> tuple[Tensor, Tensor]:
        """``(xs, ys)``.

        Raises:
            ValueError: The inputs hold no batch.
        """
        if self.xs is None or self.ys is None:
            raise ValueError("this action needs a batch of images (ActionInputs.xs, ys)")
        return self.xs, self.ys

    @property
    def device(self) -> torch.device:
        """The device everything runs on."""
        return self.x.device


def _cpu(t: Tensor) -> Tensor:
    return t.detach().cpu()


def _is_kwta(model: nn.Module) -> bool:
    return get_ratio(model) is not None


def _run_probes(run: AttackRun) -> list[Probe]:
    """The whole run, compared only on the same device: every step's logits and class,
    the adversarial image."""
    return [
        Probe("logits at every step", _cpu(run.trace.logits[:, 0]).double(), same_device=True),
        Probe("class at every step", _cpu(run.trace.pred[:, 0]), "exact", same_device=True),
        Probe("adversarial image", _cpu(run.x_adv).double(), same_device=True),
    ]


def _attack_probes(run: AttackRun, inputs: ActionInputs) -> list[Probe]:
    return [
        Probe("clean logits", _cpu(run.trace.logits[0]).double(), rtol=1e-3, atol=1e-3),
        Probe("clean prediction", _cpu(run.trace.pred[0]), kind="exact"),
        Probe(
            "adversarial image in the ε-ball", torch.tensor([run.linf <= run.eps + 1e-6]), "exact"
        ),
        *_run_probes(run),
    ]


def _path_probes(p: AttackPath, inputs: ActionInputs) -> list[Probe]:
    # the walk may part between devices (gradient signs), and its plane with it: checked are
    # the clean image's logits, the ε-ball, and that the walk starts at x with its pattern
    return [
        *_attack_probes(p.run, inputs),
        Probe("the walk starts at x", _cpu(p.plane.path[0]), "exact"),
        Probe("no pattern changed at x", _cpu(p.changed[:1]), "exact"),
        Probe("loss on the plane", _cpu(p.plane.loss).double(), same_device=True),
        Probe("pattern changed at every step", _cpu(p.changed).double(), same_device=True),
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
        *_run_probes(run),
        Probe("queries", torch.tensor([run.queries or 0]), "exact", same_device=True),
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
        Probe("k-WTA jumps", torch.tensor([len(fit.kwta_jumps)]), "exact", same_device=True),
        Probe(
            "train MSE (k-WTA, ReLU)",
            torch.tensor([fit.kwta_loss, fit.relu_loss], dtype=torch.float64),
            same_device=True,
        ),
    ]


def _weight_probes(wl: WeightLine, inputs: ActionInputs) -> list[Probe]:
    return [
        Probe("loss along the weight line", _cpu(wl.loss).double(), rtol=1e-3, atol=1e-3),
        Probe(
            "accuracy along the weight line",
            _cpu(wl.accuracy).double(),
            atol=2.0 / len(inputs.batch()[1]),
        ),
    ]


def _gamma_probes(g: GammaSweep, inputs: ActionInputs) -> list[Probe]:
    # a k-WTA winner may flip across devices: an image either side, per γ
    return [
        Probe("γ", _cpu(g.ratios).double(), "exact"),
        Probe(
            "clean accuracy at each γ",
            _cpu(g.clean_accuracy).double(),
            rtol=0.0,
            atol=2.0 / len(inputs.batch()[1]),
        ),
    ]


# ------------------------------------------------------------------ summaries
# What a result's Python script prints (kwta.explorer.scripts), name for name.


def _run_summary(run: AttackRun) -> dict[str, Any]:
    out: dict[str, Any] = {
        "clean prediction": run.clean_pred,
        "adversarial prediction": run.adv_pred,
        "attack succeeded": run.success,
        "first misclassified at step": run.first_misclassified,
        "final linf": run.linf,
    }
    if run.queries is not None:
        out["queries"] = run.queries
    return out


def _path_summary(p: AttackPath) -> dict[str, Any]:
    return _run_summary(p.run) | {"pattern changed at the last step": float(p.changed[-1])}


def _landscape_summary(ls: Landscape) -> dict[str, Any]:
    return {
        "clean loss": ls.clean_loss,
        "lowest loss": float(ls.loss.min()),
        "highest loss": float(ls.loss.max()),
    }


def _toy_summary(fit: ToyFit) -> dict[str, Any]:
    return {
        "k-WTA jumps": len(fit.kwta_jumps),
        "ReLU jumps": len(fit.relu_jumps),
        "k-WTA train MSE": fit.kwta_loss,
        "ReLU train MSE": fit.relu_loss,
    }


def _weights_summary(wl: WeightLine) -> dict[str, Any]:
    return {"lowest loss": float(wl.loss.min()), "highest loss": float(wl.loss.max())}


def _masking_summary(rep: MaskingReport) -> dict[str, Any]:
    return {
        "correctly classified": rep.n_correct,
        "gradient masking suspected": rep.suspected,
        **{i.key: i.value for i in rep.indicators},
    }


def _gamma_summary(g: GammaSweep) -> dict[str, Any]:
    best = int(g.clean_accuracy.argmax())
    return {
        "best clean accuracy": float(g.clean_accuracy[best]),
        "at gamma": float(g.ratios[best]),
        "lowest clean accuracy": float(g.clean_accuracy.min()),
    }


def _patterns_summary(result: tuple[WinnerMap, dict[str, PatternChange]]) -> dict[str, Any]:
    wm, curves = result
    return {
        "winners on x": wm.n_winners,
        "units changed": wm.n_changed,
        "pattern changed at the largest eps (as trained, mean over layers)": float(
            curves["as trained"].changed_fraction[-1].mean()
        ),
    }


@dataclass(frozen=True)
class PageAction:
    """One page's main library call, its settings and the page's defaults.

    Attributes:
        key: Short identifier (``"attack"``, ``"landscape50"``…).
        page: The page it belongs to.
        what: What is computed, for tables.
        fn: ``fn(inputs, settings, callback=None, **extra)``: the library call with every
            setting given (call :meth:`run`, which checks them).
        probes: ``probes(result, inputs)``: the comparable parts of a result.
        settings: The call's settings with the page's defaults.
        summary: ``summary(result)``: the few numbers a result's Python script prints.
        per_model: Runs once per model (``False``: once, on the toy MLP).
        repeats: Timed repetitions a benchmark should use (heavy actions: 1).
        batched: The call takes a batch size that :func:`kwta.explorer.jobs.retry_on_oom`
            may halve (the landscape page does).
        on_batch: Runs on the class-balanced batch (``inputs.xs``), not on one image.
        kwta_only: Needs k-WTA layers (changes γ); see :meth:`applies_to`.
    """

    key: str
    page: str
    what: str
    fn: Callable[..., Any]
    probes: Callable[[Any, ActionInputs], list[Probe]]
    settings: tuple[Setting, ...] = ()
    summary: Callable[[Any], dict[str, Any]] = field(default=lambda result: {})
    per_model: bool = True
    repeats: int | None = None
    batched: bool = False
    on_batch: bool = False
    kwta_only: bool = False

    def applies_to(self, model: nn.Module) -> bool:
        """Whether the action can run on ``model`` (a ReLU network has no γ to change)."""
        return not self.kwta_only or _is_kwta(model)

    def defaults(self) -> dict[str, SettingValue]:
        """Every setting at the page's default."""
        return {s.name: s.default for s in self.settings}

    def resolve(self, given: Mapping[str, Any] | None = None) -> dict[str, SettingValue]:
        """The page defaults updated by ``given``, each value checked.

        Raises:
            ValueError: An unknown setting, or a value its :class:`Setting` refuses.
        """
        given = dict(given or {})
        known = {s.name: s for s in self.settings}
        unknown = sorted(set(given) - set(known), key=str)
        if unknown:
            raise ValueError(
                f"{self.key}: unknown setting(s) {[shown(u) for u in unknown[:5]]}; "
                f"known: {sorted(known)}"
            )
        return {n: s.check(given[n]) if n in given else s.default for n, s in known.items()}

    def run(
        self,
        inputs: ActionInputs,
        settings: Mapping[str, Any] | None = None,
        *,
        callback: Callable[..., Any] | None = None,
        **extra: Any,
    ) -> Any:
        """The library call on ``inputs`` with ``settings`` (the rest at the page defaults).

        Args:
            inputs: Model and images.
            settings: Some or all of :attr:`settings` by name.
            callback: Progress callback of the library call.
            **extra: Further keywords of the call that do not change its result
                (``batch_size``).

        Raises:
            ValueError: A setting is unknown or refused (see :meth:`resolve`).
        """
        return self.fn(inputs, self.resolve(settings), callback=callback, **extra)


# The settings' names are the library calls' keywords (the scripts rely on it too).


def _attack(i: ActionInputs, s: Mapping[str, Any], callback: Any = None) -> AttackRun:
    return attack_with_trace(i.model, i.x, i.label, **s, callback=callback)


def _attack_path(
    i: ActionInputs, s: Mapping[str, Any], callback: Any = None, **extra: Any
) -> AttackPath:
    return attack_path(i.model, i.x, i.label, **s, callback=callback, **extra)


def _landscape(
    i: ActionInputs,
    s: Mapping[str, Any],
    callback: Any = None,
    batch_size: int = LANDSCAPE_BATCH,
) -> Landscape:
    return landscapes.loss_landscape(  # through its module: a test may replace it
        i.model, i.x, i.label, **s, batch_size=batch_size, callback=callback
    )


def _patterns(
    i: ActionInputs, s: Mapping[str, Any], callback: Any = None
) -> tuple[WinnerMap, dict[str, PatternChange]]:
    layer = s["layer"] or next(iter(activation_layers(i.model, i.x)))  # "": the first one
    ratios = s["ratios"] if _is_kwta(i.model) else ()  # other γ: k-WTA models only
    curves = pattern_change_sweep(
        i.model, i.x, ratios, n_dirs=s["n_dirs"], seed=s["seed"], callback=callback
    )
    return winner_map(i.model, i.x, layer, eps=s["eps"], seed=s["seed"]), curves


def _adaptive(i: ActionInputs, s: Mapping[str, Any], callback: Any = None) -> AttackRun:
    return adaptive_attack_with_trace(i.model, i.x, i.label, **s, callback=callback)


def _masking(i: ActionInputs, s: Mapping[str, Any], callback: Any = None) -> MaskingReport:
    xs, ys = i.batch()  # the page: kwta.explorer.adaptive.masking_check's balanced subset
    return masking_indicators(
        i.model,
        xs,
        ys,
        eps=s["eps"],
        generator=torch.Generator().manual_seed(s["seed"]),
        callback=callback,
    )


def _weights(i: ActionInputs, s: Mapping[str, Any], callback: Any = None) -> WeightLine:
    xs, ys = i.batch()
    return weight_line(i.model, xs, ys, alphas=LINE_ALPHAS, callback=callback)


def _gamma(i: ActionInputs, s: Mapping[str, Any], callback: Any = None) -> GammaSweep:
    xs, ys = i.batch()
    return gamma_sweep(i.model, xs, ys, s["ratios"], callback=callback)


def _toy(i: ActionInputs, s: Mapping[str, Any], callback: Any = None) -> ToyFit:
    return toy_fit(**s, device=i.device, callback=callback)


_SEED = Setting("seed", 0, 0, 10**9)
_EPS = Setting("eps", paper.EPS, 0.0, 0.1)
_LOSS = Setting("loss", "ce", choices=("ce", "margin"))
#: The attack steps' precision (kwta.attacks._steps); a result records what "auto" resolved to.
_PRECISION = Setting("precision", "auto", choices=("auto", "fp32", "bf16", "fp16"))
_ATTACK_SETTINGS = (
    _EPS,
    Setting("alpha", 0.001, 1e-4, 0.05),
    Setting("steps", 40, 0, MAX_STEPS),
    _LOSS,
    Setting("random_start", False),
    _SEED,
    _PRECISION,
)


def _landscape_settings(grid: int) -> tuple[Setting, ...]:
    return (Setting("grid", grid, 2, MAX_GRID), Setting("span", 0.04, 1e-3, 0.25), _SEED, _LOSS)


#: The pages' main computations, in page order (Overview's Fig. 2 demo runs on the
#: CPU whatever the device and is not listed).
PAGE_ACTIONS: tuple[PageAction, ...] = (
    PageAction(
        "attack",
        "Live attack",
        "PGD-40 + trace, 1 image",
        _attack,
        _attack_probes,
        _ATTACK_SETTINGS,
        _run_summary,
    ),
    PageAction(
        "landscape",
        "Loss landscape",
        "loss landscape 21×21 (CPU default)",
        _landscape,
        _landscape_probes,
        _landscape_settings(21),
        _landscape_summary,
        batched=True,
    ),
    PageAction(
        "landscape50",
        "Loss landscape",
        "loss landscape 50×50 (paper, GPU default)",
        _landscape,
        _landscape_probes,
        _landscape_settings(50),
        _landscape_summary,
        repeats=1,
        batched=True,
    ),
    PageAction(
        "attack_path",
        "Attack path",
        f"PGD-40 + its {DEFAULT_GRID}×{DEFAULT_GRID} plane + patterns, 1 image",
        _attack_path,
        _path_probes,
        (
            Setting("eps", paper.EPS, 1e-3, 0.1),
            Setting("alpha", 0.003, 1e-4, 0.05),
            Setting("steps", 40, 1, MAX_STEPS),
            Setting("random_start", False),
            _SEED,
            Setting("second", "gradient", choices=("gradient", "random")),
            Setting("grid", DEFAULT_GRID, 3, MAX_GRID),
            _PRECISION,
        ),
        _path_summary,
        repeats=1,
    ),
    PageAction(
        "weights",
        "Loss landscape",
        "Fig. 3c weight line, 32 images",
        _weights,
        _weight_probes,
        (),
        _weights_summary,
        repeats=1,
        on_batch=True,
    ),
    PageAction(
        "patterns",
        "Activation patterns",
        "winner map + change vs ε",
        _patterns,
        _pattern_probes,
        (
            Setting("layer", "", pattern=r"[A-Za-z0-9_.]{0,100}"),
            Setting("eps", 0.002, 0.0, 0.1),
            Setting("ratios", DEFAULT_RATIOS, 0.01, 1.0, item=float, max_len=16),
            Setting("n_dirs", 2, 1, 16),
            _SEED,
        ),
        _patterns_summary,
    ),
    PageAction(
        "adaptive",
        "Is k-WTA really robust?",
        f"adaptive PGD, 20 steps, ≤ {ADAPTIVE_BUDGET} queries, 1 image",
        _adaptive,
        _adaptive_probes,
        (
            Setting("estimator", "fd", choices=("fd", "eot")),
            _EPS,
            Setting("alpha", 0.005, 5e-4, 0.05),
            Setting("steps", 20, 1, 100),
            Setting("sigma", 8 / 255, 0.5 / 255, 32 / 255),
            Setting("samples", budget_schedule(ADAPTIVE_BUDGET, 20), 1, MAX_QUERIES_PER_STEP),
            _SEED,
            _PRECISION,
        ),
        _run_summary,
    ),
    PageAction(
        "masking",
        "Is k-WTA really robust?",
        "masking check, 32 images",
        _masking,
        _masking_probes,
        (_EPS, _SEED),
        _masking_summary,
        repeats=1,
        on_batch=True,
    ),
    PageAction(
        "gamma",
        "Model zoo",
        "Fig. 4 live: clean accuracy at each γ, fixed weights, 200 images",
        _gamma,
        _gamma_probes,
        (Setting("ratios", (0.2, 0.1, 0.05), 0.001, 1.0, item=float, max_len=64),),
        _gamma_summary,
        repeats=1,
        on_batch=True,
        kwta_only=True,
    ),
    PageAction(
        "toy",
        "1-D toy fit",
        "toy fit (8 points, width 64, 2 000 steps)",
        _toy,
        _toy_probes,
        (
            Setting("n_points", 8, 1, 64),
            Setting("width", 64, 1, 512),
            Setting("depth", 2, 1, 4),
            Setting("ratio", 0.1, 0.01, 1.0),
            Setting("seed", 0, 0, 10**6),
            Setting("steps", 2000, 0, MAX_FIT_STEPS),
        ),
        _toy_summary,
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
