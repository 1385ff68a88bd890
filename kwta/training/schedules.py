"""Learning-rate and sparsity schedules: the paper's step schedule, one-cycle,
and incremental fine-tuning of γ (Sec. 2.2, Fig. 6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kwta import paper
from kwta.nn.functional import check_ratio
from kwta.training.config import TrainConfig

__all__ = [
    "EpochPlan",
    "compress_plan",
    "epoch_plan",
    "onecycle_lr",
    "ratio_schedule",
    "resolved_lr_drop",
]


@dataclass(frozen=True)
class EpochPlan:
    """One pass over the training data.

    Attributes:
        index: 0-based position in the run.
        phase: ``"main"`` or ``"fine-tune"`` (incremental fine-tuning, Sec. 2.2).
        ratio: k-WTA sparsity ratio during this pass (``None`` without k-WTA).
        lr: Learning rate during this pass.
    """

    index: int
    phase: str
    ratio: float | None
    lr: float


def ratio_schedule(
    ratio: float,
    incremental_from: float | None = None,
    *,
    delta: float = 0.005,
    epochs_per_step: int = 2,
    main_epochs: int = 0,
) -> list[float]:
    """Per-epoch sparsity ratios of incremental fine-tuning (Sec. 2.2).

    ``main_epochs`` at γ0, then γ0 − δ, γ0 − 2δ, …, γ1, each for
    ``epochs_per_step`` epochs. The last step is clipped to γ1 when δ does not
    divide γ0 − γ1. Values are rounded to 10 decimals so that, e.g.,
    ``0.2 - 20·0.005`` is exactly ``0.1``.

    Args:
        ratio: Target γ1.
        incremental_from: γ0, or ``None`` for no fine-tuning (``main_epochs`` at γ1).
        delta: δ > 0.
        epochs_per_step: Epochs per value of γ (2 in the paper).
        main_epochs: Epochs at γ0 before the first decrement.

    Returns:
        One ratio per epoch, ``main_epochs + steps·epochs_per_step`` long.
    """
    check_ratio(ratio)
    if incremental_from is None:
        return [float(ratio)] * main_epochs
    check_ratio(incremental_from)
    if incremental_from < ratio:
        raise ValueError(f"γ0 = {incremental_from} is below the target γ1 = {ratio}")
    if delta <= 0:
        raise ValueError(f"δ must be positive, got {delta}")
    steps = math.ceil((incremental_from - ratio) / delta - 1e-9)
    out = [float(incremental_from)] * main_epochs
    for i in range(1, steps + 1):
        value = max(float(ratio), round(incremental_from - i * delta, 10))
        out += [value] * epochs_per_step
    return out


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def resolved_lr_drop(config: TrainConfig) -> int:
    if config.lr_drop_epoch is not None:
        return config.lr_drop_epoch
    return _round_half_up(config.epochs * paper.LR_DROP_EPOCH / paper.EPOCHS)


def epoch_plan(config: TrainConfig) -> list[EpochPlan]:
    """The run's passes over the data, each with its ratio and learning rate (App. D.1).

    Natural/PGD/TRADES: one pass per epoch; the LR drops after
    ``lr_drop_epoch`` (default ``round(epochs·50/80)``) and stays dropped for
    the fine-tuning epochs. With the one-cycle schedule every pass carries the
    peak ``lr``; the per-step values come from :func:`onecycle_lr`. Free AT: the
    epoch counts are divided by ``m``
    (``ceil(epochs/m)`` main passes, LR drop after ``round(lr_drop_epoch/m)``
    passes, ``max(1, round(incremental_epochs/m))`` passes per fine-tuning step).
    """
    m = config.free_replays if config.method == "free" else 1
    main = math.ceil(config.epochs / m)
    drop = _round_half_up(resolved_lr_drop(config) / m)
    per_step = max(1, _round_half_up(config.incremental_epochs / m))
    has_kwta = config.act == "kwta"
    ratios = ratio_schedule(
        config.ratio,
        config.incremental_from if has_kwta else None,
        delta=config.incremental_delta,
        epochs_per_step=per_step,
        main_epochs=main,
    )
    low = float(f"{config.lr * config.lr_drop_factor:.12g}")  # 0.01, not 0.010000000000000002
    plan = []
    for i, r in enumerate(ratios):
        lr = config.lr if i < drop or config.schedule == "onecycle" else low
        plan.append(
            EpochPlan(
                index=i,
                phase="main" if i < main else "fine-tune",
                ratio=r if has_kwta else None,
                lr=lr,
            )
        )
    return plan


def compress_plan(plan: list[EpochPlan], key: str) -> list[dict[str, Any]]:
    """``[{"from_epoch": i, key: value}, …]`` at each change of ``key``."""
    out: list[dict[str, Any]] = []
    for p in plan:
        value = getattr(p, key)
        if not out or out[-1][key] != value:
            out.append({"from_epoch": p.index, key: value})
    return out


def onecycle_lr(step: int, total: int, peak: float, warmup: float) -> float:
    """Learning rate at ``step`` (0-based) of ``total`` in the one-cycle schedule.

    Linear warm-up from ``peak/25`` to ``peak`` over the first ``warmup`` fraction
    of the steps, then cosine decay to 0 at ``total`` (Smith & Topin 2019).
    """
    up = max(1, round(warmup * total))
    if step < up:
        return peak * (0.04 + 0.96 * step / up)
    frac = min(1.0, (step - up) / max(1, total - up))
    return peak * 0.5 * (1.0 + math.cos(math.pi * frac))
