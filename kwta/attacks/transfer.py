"""Transfer attacks between models: the paper's Table 3 (App. D.3)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from kwta.attacks._core import robust_accuracy
from kwta.attacks.registry import attack_names, get_attack, run_attack

__all__ = [
    "transfer_attack",
    "transfer_matrix",
]


def _takes(fn: Callable[..., Any], name: str) -> bool:
    return name in inspect.signature(fn).parameters


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
        attack: A standard attack name (:func:`kwta.attacks.registry.attack_names`).
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
    callback: Callable[[int, int], None] | None = None,
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
        attack: A standard attack name (:func:`kwta.attacks.registry.attack_names`).
        seed: Seed of each source's random start; ``None`` uses the global RNG.
        callback: ``callback(done, total)`` after each source (``total`` = number of models).
        **kw: Passed to :func:`run_attack` (not ``generator``: use ``seed``).

    Returns:
        ``matrix[target][source]`` = :func:`robust_accuracy` of ``target`` on the
        examples crafted on ``source``.
    """
    if "generator" in kw:
        raise TypeError("transfer_matrix seeds each source itself; pass seed= instead of generator")
    key = attack.lower()
    if key not in attack_names("standard"):
        raise ValueError(f"unknown attack {attack!r}; choose from {attack_names('standard')}")
    bs = kw.get("batch_size")
    matrix: dict[str, dict[str, float]] = {t: {} for t in models}
    for i, (s_name, source) in enumerate(models.items(), start=1):
        extra: dict[str, Any] = {}
        if seed is not None and _takes(get_attack(key).fn, "generator"):
            extra["generator"] = torch.Generator().manual_seed(seed)
        x_adv = run_attack(key, source, x, y, **extra, **kw)
        for t_name, target in models.items():
            matrix[t_name][s_name] = robust_accuracy(target, x, y, x_adv, batch_size=bs)
        if callback is not None:
            callback(i, len(models))
    return matrix
