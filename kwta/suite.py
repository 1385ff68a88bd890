"""The adaptive attacks by name, beside the paper's (beyond the paper: is k-WTA really robust?).

:data:`kwta.attacks.ATTACKS` holds the four white-box attacks of the paper's
Table 1. This module names the attacks that later work used to show how much of
k-WTA's robustness is gradient masking:

``apgd-ce``, ``apgd-dlr``
    Auto-PGD on the cross-entropy and on the DLR loss (Croce & Hein, ICML 2020),
    the white-box half of AutoAttack (:func:`kwta.autoattack.apgd_linf`).
``square``
    The Square attack (Andriushchenko et al., ECCV 2020), AutoAttack's
    black-box member (:func:`kwta.autoattack.square_linf`).
``fd-pgd``
    PGD on gradients estimated by Gaussian finite differences — the attack of
    Tramèr et al. (NeurIPS 2020, Sec. 5.1) that broke k-WTA
    (:func:`kwta.adaptive.fd_pgd_linf`).
``eot-pgd``
    PGD on gradients averaged over Gaussian neighbours (EOT, Athalye et al.,
    ICML 2018; :func:`kwta.adaptive.eot_pgd_linf`).

:data:`ADAPTIVE_SETTINGS` are the budgets ``kwta evaluate --adaptive`` uses on
the cards: reduced from the published ones so that a 2-core CPU evaluates a
model in minutes (AutoAttack's Square uses 5 000 queries, Tramèr et al. up to
20 000 finite-difference pairs per step — :data:`kwta.adaptive.TRAMER_SETTINGS`);
:func:`max_queries` states each budget as model evaluations per image.
:func:`kwta.attacks.run_attack` accepts these names too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .adaptive import CPU_SETTINGS, eot_pgd_linf, fd_pgd_linf, sample_schedule
from .autoattack import apgd_linf, square_linf

__all__ = [
    "ADAPTIVE_ATTACKS",
    "ADAPTIVE_DESCRIPTIONS",
    "ADAPTIVE_SETTINGS",
    "DEFAULT_ADAPTIVE",
    "max_queries",
]

#: Name → attack function (same calling convention as :data:`kwta.attacks.ATTACKS`).
ADAPTIVE_ATTACKS: dict[str, Callable[..., Any]] = {
    "apgd-ce": apgd_linf,
    "apgd-dlr": apgd_linf,
    "square": square_linf,
    "fd-pgd": fd_pgd_linf,
    "eot-pgd": eot_pgd_linf,
}

#: The settings of ``kwta evaluate --adaptive`` (ε = 0.031, as the paper's).
ADAPTIVE_SETTINGS: dict[str, dict[str, Any]] = {
    "apgd-ce": {"eps": 0.031, "steps": 100, "loss": "ce", "restarts": 1},
    "apgd-dlr": {"eps": 0.031, "steps": 100, "loss": "dlr", "restarts": 1},
    "square": {"eps": 0.031, "queries": 1000, "p_init": 0.8},
    "fd-pgd": dict(CPU_SETTINGS),
    # eot_pgd_linf's own defaults: 10 -> 100 noisy neighbours per step, each a forward
    # and a backward pass; at most 1 619 queries per image (fd-pgd: 3 217)
    "eot-pgd": {**CPU_SETTINGS, "samples": (10, 100)},
}

#: One line per attack, for tables and the app.
ADAPTIVE_DESCRIPTIONS: dict[str, str] = {
    "apgd-ce": "Auto-PGD, cross-entropy (Croce & Hein 2020)",
    "apgd-dlr": "Auto-PGD, DLR loss (Croce & Hein 2020)",
    "square": "Square attack, black-box (Andriushchenko et al. 2020)",
    "fd-pgd": "PGD on finite-difference gradients (Tramèr et al. 2020)",
    "eot-pgd": "PGD on gradients averaged over Gaussian noise (EOT)",
    "transfer": "PGD on the ReLU twin, transferred (App. D.3)",
}

#: What ``kwta evaluate --adaptive`` runs by default.
DEFAULT_ADAPTIVE: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "square", "fd-pgd", "eot-pgd")


def max_queries(name: str, settings: Mapping[str, Any]) -> int:
    """Model evaluations the attack may spend on one image (early stopping spends fewer).

    One forward pass counts one, a forward and a backward pass (a gradient) two,
    the same count the attacks' ``Trace.queries`` record: PGD and MIM spend one
    gradient per step; APGD one at the start and one per step, per restart; Square
    one forward pass per query; the estimated-gradient attacks one forward pass at
    the start, then per step ``2n`` (``n`` finite-difference pairs, or ``n`` noisy
    gradients) plus one for the check of the new iterate.

    Raises:
        ValueError: An attack this function has no budget rule for.
    """
    if name in ("pgd", "mim"):  # the paper's white-box sign-gradient attacks
        return 2 * int(settings.get("steps", 40))
    if name in ("apgd-ce", "apgd-dlr"):
        return 2 * (int(settings.get("steps", 100)) + 1) * int(settings.get("restarts", 1))
    if name == "square":
        return int(settings.get("queries", 5000))
    if name in ("fd-pgd", "eot-pgd"):
        steps = int(settings.get("steps", 100))
        per_step = sample_schedule(settings.get("samples", (100, 20_000)), steps)
        return 1 + sum(2 * n + 1 for n in per_step)
    if name == "transfer":
        return 0
    raise ValueError(f"unknown adaptive attack {name!r}; choose from {sorted(ADAPTIVE_ATTACKS)}")
