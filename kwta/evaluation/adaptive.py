"""Robust accuracy under adaptive attacks (beyond the paper): Auto-PGD, Square,
finite-difference and EOT PGD, and transfer from the ReLU twin (Tramèr et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from kwta import paper
from kwta.attacks.registry import DEFAULT_ADAPTIVE, get_attack, max_queries
from kwta.data import CIFAR10Tensors
from kwta.evaluation.robust import attack_subset, scored_attack
from kwta.utils import default_device

__all__ = [
    "A_ROB_ADAPTIVE_DEFINITION",
    "evaluate_adaptive",
]


#: How the adaptive worst case is computed, for JSON outputs and cards.
A_ROB_ADAPTIVE_DEFINITION = (
    "worst case over standard PGD (App. D.1 settings), the adaptive attacks and the transfer "
    "from the ReLU twin, on the adaptive subset: the smallest per-attack robust accuracy; "
    "A_rob_adaptive_per_image counts the images that survive every one of them"
)


def evaluate_adaptive(
    model: nn.Module,
    data: CIFAR10Tensors,
    *,
    attacks: Sequence[str] | None = None,
    n: int = 100,
    twin: nn.Module | None = None,
    twin_name: str | None = None,
    batch_size: int = 256,
    eps: float = paper.EPS,
    seed: int = 0,
    device: torch.device | str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    callback: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Standard PGD against adaptive attacks on one subset (beyond the paper).

    On a fixed, class-balanced, seeded subset of ``n`` test images, runs the
    paper's PGD (App. D.1 settings), then each adaptive attack of
    :mod:`kwta.attacks.registry` (Auto-PGD CE/DLR, Square,
    finite-difference and EOT PGD) and, when a ``twin`` is given, PGD on that
    ReLU twin transferred to ``model`` (App. D.3's black-box setting). If the
    defence's robustness is gradient masking, the adaptive attacks' robust
    accuracy falls far below standard PGD's (Tramèr et al., NeurIPS 2020, Sec. 5.1).

    Args:
        model: Classifier taking pixels in [0, 1] (put in eval mode here).
        data: Test split.
        attacks: Adaptive attack names (default :data:`kwta.attacks.registry.DEFAULT_ADAPTIVE`).
        n: Subset size (``data.balanced_indices(n, seed=seed)``).
        twin: A ReLU model trained the same way, for the transfer attack, or ``None``.
        twin_name: Its name, for the result.
        batch_size: Images per attack batch.
        eps: L∞ radius for every attack.
        seed: Seed of the subset and of every attack.
        device: Where to run (default: CUDA when present).
        overrides: Per-attack settings replacing the defaults.
        progress: Show a tqdm bar per attack.
        callback: ``callback(attack, partial_result)`` after each attack.

    Returns:
        A JSON-able dict: ``n``, ``seed``, ``rule``, ``indices_sha256``,
        ``clean_accuracy``, ``eps``, ``attacks`` (per attack: accuracy, robust
        count, kind ``standard``/``adaptive``/``transfer``, settings, the query
        budget per image, max ℓ∞ distance, seconds), ``standard_pgd``,
        ``A_rob_adaptive`` (worst attack), ``worst_attack``,
        ``A_rob_adaptive_per_image`` and ``twin``.

    Raises:
        ValueError: Unknown attack, bad ``n`` or ``eps``.
        RuntimeError: An attack returned points outside the ε-ball or [0, 1].
    """
    names = list(DEFAULT_ADAPTIVE if attacks is None else attacks)
    overrides = overrides or {}
    dev = default_device(device)
    model = model.to(dev).eval()
    if twin is not None:
        twin = twin.to(dev).eval()
    sub = attack_subset(
        model,
        data,
        attacks=names,
        group="adaptive",
        n=n,
        eps=eps,
        seed=seed,
        batch_size=batch_size,
        device=dev,
    )
    x, y, ok_clean = sub.x, sub.y, sub.ok_clean
    result: dict[str, Any] = {
        **{k: v for k, v in sub.record.items() if k != "indices"},
        "eps": eps,
        "attacks": {},
        "standard_pgd": None,
        "A_rob_adaptive": None,
        "A_rob_adaptive_per_image": None,
        "A_rob_adaptive_definition": A_ROB_ADAPTIVE_DEFINITION,
        "worst_attack": None,
        "twin": twin_name if twin is not None else None,
    }
    plan: list[tuple[str, str, dict[str, Any]]] = [
        ("pgd", "standard", get_attack("pgd").settings(eps=eps, **overrides.get("pgd", {})))
    ]
    plan += [
        (a, "adaptive", get_attack(a).settings(eps=eps, **overrides.get(a, {}))) for a in names
    ]
    if twin is not None:
        settings = get_attack("pgd").settings(eps=eps, **overrides.get("transfer", {}))
        plan.append(("transfer", "transfer", settings))
    robust_all = ok_clean.clone()
    for name, kind, params in plan:
        ok, entry = scored_attack(
            "pgd" if kind == "transfer" else name,
            model,
            x,
            y,
            ok_clean,
            params,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
            source=twin if kind == "transfer" else None,
        )
        entry["kind"] = kind
        entry["max_queries_per_image"] = 0 if kind == "transfer" else max_queries(name, params)
        if kind == "transfer":
            entry["source"] = twin_name
        robust_all &= ok
        result["attacks"][name] = entry
        if callback is not None:
            callback(name, result)
    accs = {k: v["accuracy"] for k, v in result["attacks"].items()}
    worst = min(accs, key=lambda k: accs[k])
    result.update(
        standard_pgd=accs["pgd"],
        A_rob_adaptive=accs[worst],
        A_rob_adaptive_per_image=int(robust_all.sum()) / len(y),
        worst_attack=worst,
    )
    return result
