"""Every attack by name: one record each (function, default settings, description,
group, query cost), and :func:`run_attack` to run one in batches.

Two groups:

``standard``
    The white-box attacks of the paper's Table 1 (PGD, MIM, C&W, DeepFool; App. D.1
    settings, ε = 0.031) and FGSM (not in the paper; same ε).
``adaptive``
    What later work used to show how much of k-WTA's robustness is gradient
    masking (beyond the paper): Auto-PGD on cross-entropy and DLR (Croce & Hein,
    ICML 2020), the Square attack (Andriushchenko et al., ECCV 2020), PGD on
    finite-difference gradients (Tramèr et al., NeurIPS 2020, Sec. 5.1 — the attack
    that broke k-WTA) and EOT PGD (Athalye et al., ICML 2018). Their defaults are
    budgets a 2-core CPU evaluates in minutes (AutoAttack's Square uses 5 000
    queries, Tramèr et al. up to 20 000 finite-difference pairs per step:
    :data:`kwta.attacks.estimated.TRAMER_SETTINGS`).

Each record states its budget as model evaluations per image
(:meth:`AttackSpec.max_queries`): a forward pass counts one, a forward and a
backward pass (a gradient) two — the count the attacks' ``Trace.queries`` record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kwta import paper
from kwta.attacks._core import ProgressCallback, batch_callback
from kwta.attacks.apgd import apgd_linf
from kwta.attacks.estimated import CPU_SETTINGS, eot_pgd_linf, fd_pgd_linf, sample_schedule
from kwta.attacks.min_norm import cw_l2, deepfool_linf
from kwta.attacks.sign_gradient import fgsm_linf, mim_linf, pgd_linf
from kwta.attacks.square import square_linf
from kwta.utils import batches

__all__ = [
    "DEFAULT_ADAPTIVE",
    "DEFAULT_STANDARD",
    "TRANSFER_DESCRIPTION",
    "AttackSpec",
    "Group",
    "attack_names",
    "get_attack",
    "max_queries",
    "run_attack",
]

log = logging.getLogger(__name__)

#: ``"standard"``: the paper's white-box attacks and FGSM; ``"adaptive"``: beyond the paper.
Group = Literal["standard", "adaptive"]


@dataclass(frozen=True)
class AttackSpec:
    """One attack: how to call it, with what, what it is and what it costs.

    Attributes:
        name: Registry key (``"pgd"``, ``"apgd-dlr"``, …).
        fn: ``fn(model, x, y, *, eps, ..., callback=None)`` → adversarial pixels.
        defaults: The settings it runs with unless overridden (read-only).
        description: One line for tables and the app.
        group: ``"standard"`` or ``"adaptive"``.
        in_paper: Whether the paper's Table 1 reports it.
        cost: Model evaluations per image for given settings (an upper bound:
            early stopping spends fewer).
    """

    name: str
    fn: Callable[..., Any]
    defaults: Mapping[str, Any]
    description: str
    group: Group
    in_paper: bool
    cost: Callable[[Mapping[str, Any]], int]

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The defaults with ``overrides`` applied (a fresh dict)."""
        return {**self.defaults, **overrides}

    def max_queries(self, settings: Mapping[str, Any] | None = None) -> int:
        """Model evaluations per image under ``settings`` (default: :attr:`defaults`)."""
        return self.cost({**self.defaults, **(settings or {})})


def _gradient_steps(default_steps: int) -> Callable[[Mapping[str, Any]], int]:
    return lambda s: 2 * int(s.get("steps", default_steps))


def _apgd_cost(s: Mapping[str, Any]) -> int:  # one gradient at the start and one per step
    return 2 * (int(s.get("steps", 100)) + 1) * int(s.get("restarts", 1))


def _estimated_cost(s: Mapping[str, Any]) -> int:
    # one forward pass at the start, then per step 2n (n pairs or noisy gradients) + 1 check
    steps = int(s.get("steps", 100))
    return 1 + sum(2 * n + 1 for n in sample_schedule(s.get("samples", (100, 20_000)), steps))


def _cw_cost(s: Mapping[str, Any]) -> int:  # one gradient per optimisation step
    return (
        2
        * int(s.get("steps", paper.CW_STEPS))
        * int(s.get("binary_search_steps", paper.CW_BINARY_SEARCH_STEPS))
    )


def _deepfool_cost(s: Mapping[str, Any]) -> int:
    # per step one forward pass and one backward pass per candidate class
    return int(s.get("steps", paper.DEEPFOOL_STEPS)) * (
        1 + int(s.get("candidates", paper.DEEPFOOL_CANDIDATES))
    )


def _spec(
    name: str,
    fn: Callable[..., Any],
    defaults: Mapping[str, Any],
    description: str,
    group: Group,
    cost: Callable[[Mapping[str, Any]], int],
    *,
    in_paper: bool = False,
) -> AttackSpec:
    return AttackSpec(
        name, fn, MappingProxyType(dict(defaults)), description, group, in_paper, cost
    )


_REGISTRY: dict[str, AttackSpec] = {
    s.name: s
    for s in (
        _spec(
            "fgsm",
            fgsm_linf,
            {"eps": paper.EPS},
            "FGSM: one signed-gradient step (Goodfellow et al. 2015; not in the paper)",
            "standard",
            lambda s: 2,
        ),
        _spec(
            "pgd",
            pgd_linf,
            {
                "eps": paper.EPS,
                "alpha": paper.STEP_SIZE,
                "steps": paper.PGD_STEPS,
                "random_start": True,
            },
            "PGD-40 with a random start (Madry et al. 2018; App. D.1)",
            "standard",
            _gradient_steps(paper.PGD_STEPS),
            in_paper=True,
        ),
        _spec(
            "mim",
            mim_linf,
            {
                "eps": paper.EPS,
                "alpha": paper.STEP_SIZE,
                "steps": paper.MIM_STEPS,
                "decay": paper.MIM_DECAY,
            },
            "Momentum iterative method, 20 steps (Dong et al. 2018; App. D.1)",
            "standard",
            _gradient_steps(paper.MIM_STEPS),
            in_paper=True,
        ),
        _spec(
            "cw",
            cw_l2,
            {
                "eps": paper.EPS,
                "steps": paper.CW_STEPS,
                "binary_search_steps": paper.CW_BINARY_SEARCH_STEPS,
                "lr": paper.CW_LR,
                "initial_const": paper.CW_INITIAL_CONST,
                "confidence": 0.0,
            },
            "Carlini-Wagner L2, projected onto the L∞ ball (App. D.1)",
            "standard",
            _cw_cost,
            in_paper=True,
        ),
        _spec(
            "deepfool",
            deepfool_linf,
            {
                "eps": paper.EPS,
                "steps": paper.DEEPFOOL_STEPS,
                "candidates": paper.DEEPFOOL_CANDIDATES,
                "overshoot": paper.DEEPFOOL_OVERSHOOT,
            },
            "DeepFool L∞ (Moosavi-Dezfooli et al. 2016; App. D.1)",
            "standard",
            _deepfool_cost,
            in_paper=True,
        ),
        _spec(
            "apgd-ce",
            apgd_linf,
            {"eps": paper.EPS, "steps": 100, "loss": "ce", "restarts": 1},
            "Auto-PGD, cross-entropy (Croce & Hein 2020)",
            "adaptive",
            _apgd_cost,
        ),
        _spec(
            "apgd-dlr",
            apgd_linf,
            {"eps": paper.EPS, "steps": 100, "loss": "dlr", "restarts": 1},
            "Auto-PGD, DLR loss (Croce & Hein 2020)",
            "adaptive",
            _apgd_cost,
        ),
        _spec(
            "square",
            square_linf,
            {"eps": paper.EPS, "queries": 1000, "p_init": 0.8},
            "Square attack, black-box (Andriushchenko et al. 2020)",
            "adaptive",
            lambda s: int(s.get("queries", 5000)),
        ),
        _spec(
            "fd-pgd",
            fd_pgd_linf,
            CPU_SETTINGS,
            "PGD on finite-difference gradients (Tramèr et al. 2020)",
            "adaptive",
            _estimated_cost,
        ),
        # eot_pgd_linf's own schedule: 10 -> 100 noisy neighbours per step, each a forward
        # and a backward pass; at most 1 619 queries per image (fd-pgd: 3 217)
        _spec(
            "eot-pgd",
            eot_pgd_linf,
            {**CPU_SETTINGS, "samples": (10, 100)},
            "PGD on gradients averaged over Gaussian noise (EOT)",
            "adaptive",
            _estimated_cost,
        ),
    )
}

#: The paper's Table 1 attacks, in its column order: what ``kwta evaluate`` runs.
DEFAULT_STANDARD: tuple[str, ...] = ("pgd", "mim", "cw", "deepfool")

#: What ``kwta evaluate --adaptive`` runs by default.
DEFAULT_ADAPTIVE: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "square", "fd-pgd", "eot-pgd")

#: The transfer attack of the adaptive evaluation (App. D.3) is not a function of one
#: model, so it has no record; this is its line in tables.
TRANSFER_DESCRIPTION = "PGD on the ReLU twin, transferred (App. D.3)"


def attack_names(group: Group | None = None) -> list[str]:
    """Registered names, in registry order (``group``: only that group)."""
    return [n for n, s in _REGISTRY.items() if group is None or s.group == group]


def get_attack(name: str | AttackSpec) -> AttackSpec:
    """The record of ``name`` (case-insensitive); a record passes through.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
    """
    if isinstance(name, AttackSpec):
        return name
    spec = _REGISTRY.get(name.lower())
    if spec is None:
        raise ValueError(
            f"unknown attack {name!r}; choose from {attack_names('standard')} or the "
            f"adaptive {attack_names('adaptive')}"
        )
    return spec


def max_queries(name: str, settings: Mapping[str, Any]) -> int:
    """Model evaluations attack ``name`` may spend on one image under ``settings``
    (``"transfer"``: 0 on the attacked model)."""
    if name == "transfer":
        return 0
    return get_attack(name).max_queries(settings)


def run_attack(
    name: str | AttackSpec,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = 256,
    callback: ProgressCallback | None = None,
    **overrides: Any,
) -> Tensor:
    """Run an attack with its default settings, in batches, on ``x``'s device.

    Args:
        name: A registered name (:func:`attack_names`) or a record.
        model: Classifier in eval mode, on ``x``'s device.
        x: ``(N, ...)`` clean inputs in [0, 1].
        y: ``(N,)`` true labels.
        batch_size: Samples per batch.
        callback: ``callback(done, total)`` with attack steps summed over batches.
        **overrides: Replace or add settings (e.g. ``steps=10``, ``eps=8/255``,
            ``generator=...``).

    Returns:
        ``(N, ...)`` adversarial inputs.

    Raises:
        ValueError: Unknown attack.
    """
    spec = get_attack(name)
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    params = spec.settings(**overrides)
    y = y.to(x.device)
    if len(x) == 0:
        return x.detach().clone()
    slices = list(batches(len(x), batch_size))
    out: list[Tensor] = []
    for b, sl in enumerate(slices):
        inner = None if callback is None else batch_callback(callback, b, len(slices))
        out.append(spec.fn(model, x[sl], y[sl], callback=inner, **params))
        log.debug("%s: batch %d/%d done", spec.name, b + 1, len(slices))
    return torch.cat(out)
