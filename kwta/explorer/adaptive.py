"""What the explorer's "Is k-WTA really robust?" page computes (beyond the paper).

The paper reports k-WTA's robustness under standard gradient attacks. Tramèr,
Carlini, Brendel and Madry (NeurIPS 2020, Sec. 5.1) showed that PGD on
*estimated* gradients breaks it; Croce & Hein's AutoAttack (ICML 2020) found far
less robustness than reported too. This module gives the page:

- :func:`adaptive_attack_with_trace`: finite-difference or EOT PGD
  (:mod:`kwta.attacks.estimated`) on one image, traced like
  :func:`kwta.explorer.runs.attack_with_trace`, with its query count;
- :func:`budget_schedule`: the growing sample schedule that fits a query budget;
- :func:`margin_curve`: the attacker's margin per step, comparable across attacks;
- :func:`robustness_rows` and :data:`PUBLISHED_ADAPTIVE`: the zoo-wide table
  "paper-reported vs standard PGD vs adaptive".

Like :mod:`kwta.explorer`, nothing here modifies a model it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from kwta.analysis.masking import MaskingReport, masking_indicators
from kwta.attacks._core import ProgressCallback, Trace, traced
from kwta.attacks._steps import steps_ran_in
from kwta.attacks.estimated import eot_pgd_linf, fd_pgd_linf
from kwta.attacks.registry import TRANSFER_DESCRIPTION, attack_names, get_attack, max_queries
from kwta.data import CIFAR10Tensors
from kwta.explorer.runs import AttackRun, finish_run
from kwta.zoo.compare import percent
from kwta.zoo.summary import as_float, paper_reference, summarize_card

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "RobustnessRow",
    "adaptive_attack_with_trace",
    "budget_schedule",
    "margin_curve",
    "masking_check",
    "robustness_caption",
    "robustness_rows",
    "robustness_table",
]


Estimator = Literal["fd", "eot"]


#: The gradient estimators the page offers.
ESTIMATORS: dict[str, str] = {
    "fd": "finite differences (gradient-free, Tramèr et al.)",
    "eot": "averaged gradients over Gaussian noise (EOT)",
}


_ATTACK_NAME = {"fd": "fd-pgd", "eot": "eot-pgd"}


def budget_schedule(
    budget: int, steps: int, *, estimator: Estimator = "fd", growth: int = 10
) -> tuple[int, int]:
    """The largest growing schedule ``(start, growth·start)`` whose queries fit ``budget``.

    The sample count per step grows geometrically from ``start`` to
    ``growth · start`` (:func:`kwta.attacks.estimated.sample_schedule`), as in Tramèr et
    al.'s 100 → 20 000; the budget counts model evaluations per image as
    :func:`kwta.attacks.registry.max_queries` does.

    Raises:
        ValueError: ``steps`` < 1, ``growth`` < 1, unknown estimator, or a budget
            too small for one sample per step.
    """
    if estimator not in _ATTACK_NAME:
        raise ValueError(f"unknown estimator {estimator!r}; choose from {sorted(ESTIMATORS)}")
    if steps < 1 or growth < 1:
        raise ValueError(f"steps and growth must be >= 1, got {steps} and {growth}")
    name = _ATTACK_NAME[estimator]

    def cost(start: int) -> int:
        return max_queries(name, {"steps": steps, "samples": (start, growth * start)})

    if cost(1) > budget:
        raise ValueError(
            f"a budget of {budget} queries is too small for {steps} steps "
            f"(at least {cost(1)} are needed); raise the budget or lower the steps"
        )
    lo, hi = 1, 2
    while cost(hi) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # cost is increasing in start: bisect for the largest that fits
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) <= budget else (lo, mid)
    return lo, growth * lo


def adaptive_attack_with_trace(
    model: nn.Module,
    x: Tensor,
    label: int,
    *,
    estimator: Estimator = "fd",
    eps: float,
    alpha: float,
    steps: int,
    sigma: float,
    samples: int | tuple[int, int],
    seed: int = 0,
    callback: ProgressCallback | None = None,
    precision: str = "auto",
) -> AttackRun:
    """PGD with estimated gradients on one image, recording every step.

    :func:`kwta.attacks.estimated.fd_pgd_linf` (``estimator="fd"``) or
    :func:`kwta.attacks.estimated.eot_pgd_linf` (``"eot"``) on the margin loss, with
    early stopping, run on the model's device; the result is an
    :class:`kwta.explorer.runs.AttackRun` of CPU tensors whose ``queries`` is the number
    of model evaluations spent.

    Args:
        model: Classifier on pixels in [0, 1], in eval mode; not modified.
        x: One image, ``(3, H, W)`` or ``(1, 3, H, W)``, in [0, 1].
        label: Its true class.
        estimator: ``"fd"`` or ``"eot"``.
        eps: L∞ radius.
        alpha: Step size.
        steps: PGD steps.
        sigma: Standard deviation of the Gaussian samples.
        samples: Samples per step, or a growing ``(start, end)`` schedule.
        seed: Seed of the samples.
        callback: ``callback(step, steps)`` after each step.
        precision: The estimates' precision; each step's check and the trace are fp32.

    Raises:
        ValueError: Bad image shape, estimator or attack parameters.
    """
    if estimator not in _ATTACK_NAME:
        raise ValueError(f"unknown estimator {estimator!r}; choose from {sorted(ESTIMATORS)}")
    x1 = x.unsqueeze(0) if x.dim() == 3 else x
    if x1.dim() != 4 or x1.shape[0] != 1:
        raise ValueError(f"expected one image (3, H, W) or (1, 3, H, W), got {tuple(x.shape)}")
    device = next((p.device for p in model.parameters()), x1.device)
    x1 = x1.detach().to(device, torch.float32)
    y = torch.tensor([int(label)], device=device)
    attack = fd_pgd_linf if estimator == "fd" else eot_pgd_linf
    x_adv, trace = traced(attack)(
        model,
        x1,
        y,
        eps=eps,
        alpha=alpha,
        steps=steps,
        sigma=sigma,
        samples=samples,
        loss="margin",
        early_stop=True,
        generator=torch.Generator().manual_seed(int(seed)),
        callback=callback,
        precision=precision,
    )
    queries = int(trace.queries[-1, 0]) if trace.queries is not None else None
    return finish_run(
        model,
        x1,
        x_adv,
        trace,
        label,
        eps=float(eps),
        alpha=float(alpha),
        steps=int(steps),
        loss="margin",
        random_start=False,
        seed=int(seed),
        attack=attack.__name__,
        queries=queries,
        settings={"estimator": estimator, "sigma": float(sigma), "samples": samples},
        precision=steps_ran_in(precision, x1.device),
    )


def margin_curve(trace: Trace, sample: int = 0) -> np.ndarray:
    """The margin ``max_{j≠y} z_j − z_y`` at every row of ``trace`` (positive: misclassified).

    Attacks maximise different losses (PGD the cross-entropy, the adaptive ones
    the margin); the margin puts them on one axis.

    Raises:
        ValueError: The trace has no labels.
    """
    if trace.labels is None:
        raise ValueError("the trace has no labels")
    logits = trace.logits[:, sample].float()
    y = int(trace.labels[sample])
    other = logits.clone()
    other[:, y] = float("-inf")
    return (other.amax(dim=1) - logits[:, y]).cpu().numpy()


@dataclass(frozen=True)
class RobustnessRow:
    """One zoo model in the table "paper-reported vs standard PGD vs adaptive" (fractions).

    Attributes:
        name: Model name.
        label: Activation label (``"k-WTA-0.1"``, ``"ReLU"``).
        method: Training method label.
        paper_pgd: The paper's PGD robust accuracy for this setting (Table 1), if any.
        paper_a_rob: The paper's A_rob for this setting, if any.
        pgd: Our standard PGD robust accuracy (App. D.1 settings).
        pgd_n: Images behind ``pgd``.
        adaptive_n: Images of the adaptive evaluation (``None``: not evaluated).
        adaptive_pgd: Standard PGD on the adaptive subset.
        adaptive: The worst case over PGD and every adaptive attack on that subset.
        worst_attack: The attack that achieved it.
        per_attack: Attack → robust accuracy on the adaptive subset.
        twin: The ReLU twin whose examples were transferred, if any.
    """

    name: str
    label: str
    method: str
    paper_pgd: float | None
    paper_a_rob: float | None
    pgd: float | None
    pgd_n: int | None
    adaptive_n: int | None
    adaptive_pgd: float | None
    adaptive: float | None
    worst_attack: str | None
    per_attack: dict[str, float]
    twin: str | None

    @property
    def masked(self) -> float | None:
        """How much standard PGD overstates robustness on the adaptive subset."""
        if self.adaptive_pgd is None or self.adaptive is None:
            return None
        return self.adaptive_pgd - self.adaptive


def robustness_rows(cards: Mapping[str, Mapping[str, Any]]) -> list[RobustnessRow]:
    """One :class:`RobustnessRow` per card, in card order (missing numbers are ``None``)."""
    rows = []
    for name, card in cards.items():
        s = summarize_card(card)
        paper = paper_reference(s)
        metrics = card.get("metrics") or {}
        ad = metrics.get("adaptive") if isinstance(metrics, Mapping) else None
        ad = ad if isinstance(ad, Mapping) else {}
        per_raw = ad.get("robust_accuracy")
        per = {
            str(k): float(v)
            for k, v in (per_raw.items() if isinstance(per_raw, Mapping) else [])
            if as_float(v) is not None
        }
        n_raw = as_float(ad.get("n"))
        rows.append(
            RobustnessRow(
                name=name,
                label=s.activation_label,
                method=s.method_label,
                paper_pgd=paper.pgd if paper is not None else None,
                paper_a_rob=paper.a_rob if paper is not None else None,
                pgd=s.robust.get("pgd"),
                pgd_n=s.robust_n,
                adaptive_n=int(n_raw) if n_raw is not None else None,
                adaptive_pgd=as_float(ad.get("standard_pgd")),
                adaptive=as_float(ad.get("A_rob_adaptive")),
                worst_attack=str(ad["worst_attack"]) if ad.get("worst_attack") else None,
                per_attack=per,
                twin=str(ad["twin"]) if ad.get("twin") else None,
            )
        )
    return rows


def masking_check(
    model: nn.Module,
    data: CIFAR10Tensors,
    *,
    n: int,
    eps: float,
    seed: int = 0,
    callback: ProgressCallback | None = None,
) -> MaskingReport:
    """The gradient-masking indicators on ``n`` class-balanced test images (the page's check).

    The subset (:meth:`CIFAR10Tensors.balanced_indices` with ``seed``) and every random
    draw of :func:`kwta.analysis.masking.masking_indicators` (a generator seeded by
    ``seed``) are fixed, so the same request gives the same report.

    Args:
        model: Classifier in eval mode; the images go to its device.
        data: Test images.
        n: Images to check (at most ``len(data)``).
        eps: L∞ radius.
        seed: Seed of the subset and of the attacks' randomness.
        callback: Progress, as :func:`masking_indicators` reports it.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x, y = data.tensors(data.balanced_indices(min(n, len(data)), seed=seed), device=device)
    return masking_indicators(
        model, x, y, eps=eps, generator=torch.Generator().manual_seed(seed), callback=callback
    )


def robustness_table(rows: Sequence[RobustnessRow]) -> dict[str, list[str]]:
    """:func:`robustness_rows` as the page's table: one column per figure, percentages as
    text, the images behind each of ours in brackets."""

    def counted(v: float | None, n: int | None) -> str:
        return percent(v) + (f" ({n})" if n else "")

    return {
        "model": [r.name for r in rows],
        "activation · training": [f"{r.label} · {r.method}" for r in rows],
        "paper: PGD": [percent(r.paper_pgd) for r in rows],
        "ours: PGD": [counted(r.pgd, r.pgd_n) for r in rows],
        "ours: PGD, adaptive subset": [counted(r.adaptive_pgd, r.adaptive_n) for r in rows],
        "ours: adaptive (worst)": [percent(r.adaptive) for r in rows],
        "worst attack": [r.worst_attack or "—" for r in rows],
    }


def robustness_caption(rows: Sequence[RobustnessRow]) -> str:
    """What :func:`robustness_table` shows: the attacks behind "adaptive (worst)", where the
    paper's numbers come from, and how to evaluate the models not evaluated yet."""
    attacks = [f"{n} ({get_attack(n).description})" for n in attack_names("adaptive")]
    missing = [r.name for r in rows if r.adaptive is None]
    return (
        "Robust accuracy at ε = 0.031 (images in brackets). 'Adaptive (worst)' is the lowest "
        "robust accuracy over standard PGD, "
        + ", ".join([*attacks, f"transfer ({TRANSFER_DESCRIPTION})"])
        + " on the same subset; the paper's numbers are width-64 models, quoted."
        + (
            f" Not evaluated adaptively yet: {', '.join(missing)} "
            "(`python -m kwta evaluate --model NAME --adaptive --update-card`)."
            if missing
            else ""
        )
    )
