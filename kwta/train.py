"""Training k-WTA and ReLU networks the way the paper does (Sec. 2.2, App. D.1).

Four training methods, all for the same networks (Sec. 4: k-WTA replaces ReLU
and nothing else, so every method applies unchanged):

- ``"natural"``: cross-entropy on clean (augmented) images;
- ``"pgd"``: Madry et al. adversarial training. Each batch is replaced by
  untargeted ℓ∞ PGD examples (random start, 8 iterations in App. D.1,
  ε = 0.031), generated with the model in **eval** mode; the model is then
  trained on them in train mode;
- ``"trades"``: Zhang et al.'s TRADES, ``CE(f(x), y) + β·KL(f(x) ‖ f(x'))``
  with ``β = 1/λ = 6`` (App. D.1) and ``x'`` found by PGD on that KL term,
  exactly as in the reference implementation (yaodongyu/TRADES);
- ``"free"``: Shafahi et al.'s "free" adversarial training: every minibatch
  is replayed ``m = 8`` times; each replay updates the weights and the
  persistent perturbation δ (``δ ← clip(δ + ε·sign(∇δ), ±ε)``) from one
  backward pass. Following the paper's convention, the epoch budget is divided
  by ``m`` (rounded up): ``epochs=80, m=8`` makes 10 passes over the data, i.e.
  the same number of gradient steps as 80 natural epochs.

Optimiser and schedule (App. D.1): SGD, momentum 0.9, batch 256, learning rate
0.1 dropped to 0.01 after 50 of 80 epochs. With another ``epochs`` the drop
moves proportionally (``round(epochs · 50/80)``, halves up) unless ``lr_drop_epoch`` is
given. Weight decay 5·10⁻⁴ is *not* stated in the paper; it is the value of
the kuangliu/pytorch-cifar code the paper builds on (App. D.1, footnote 3).

Incremental fine-tuning (Sec. 2.2, App. D.1): with ``incremental_from = γ0``
the network is first trained at γ0 for ``epochs`` epochs (the main phase, with
the learning-rate schedule above), then γ is lowered by ``incremental_delta``
(δ = 0.005) and the network trained ``incremental_epochs`` (2) more epochs at
each step, until γ reaches the target ``ratio`` γ1. The fine-tuning epochs come
after the main phase, so they run at the dropped learning rate unless
``lr_drop_epoch`` is beyond them. The paper's recipe for k-WTA-0.1 is
``epochs=50, lr_drop_epoch=50, ratio=0.1, incremental_from=0.2``: 50 epochs at
γ = 0.2 with LR 0.1, then 20 steps of 2 epochs down to γ = 0.1 (LR 0.01).

Checkpoints: after every epoch (pass, for free AT) the model, the optimiser's
momentum buffers, the free-AT perturbation and the fp16 loss-scaler state go
to ``<out_dir>/<name>.ckpt/checkpoint.safetensors`` (no pickle) with a small
``checkpoint.json`` (epoch, ratio, learning rate, history, configuration). All
randomness of an epoch (shuffling, augmentation, attack starts) is drawn from
a generator seeded by ``(seed, epoch)``, so no RNG state needs saving and a
resumed run gives the same weights as an uninterrupted one (bit for bit on CPU;
on CUDA up to the non-determinism of its kernels).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from .activations import get_ratio, set_ratio
from .data import CIFAR10Tensors, cifar10
from .functional import check_ratio
from .hub import save_model, sha256_of
from .precision import (
    PRECISIONS,
    autocast,
    channels_last_safe,
    model_is_channels_last,
    resolve_precision,
    to_channels_last,
)
from .utils import batches, default_device, seed_all

__all__ = [
    "METHODS",
    "PAPER",
    "EpochPlan",
    "EpochRecord",
    "TrainConfig",
    "TrainState",
    "augment",
    "checkpoint_dir",
    "data_provenance",
    "device_name",
    "epoch_plan",
    "flatten_optimizer_state",
    "load_checkpoint",
    "ratio_schedule",
    "save_checkpoint",
    "train",
    "train_epoch",
    "unflatten_optimizer_state",
]

log = logging.getLogger(__name__)

Method = Literal["natural", "pgd", "trades", "free", "fgsm"]

#: Training methods of Table 1 (Sec. 4): natural, PGD adversarial training (AT),
#: TRADES and free adversarial training (FAT).
#: ``"fgsm"`` is the cheaper "fast" adversarial training of Wong, Rice, Kolter (2020),
#: used for the CPU zoo (not in the paper).
METHODS: tuple[str, ...] = ("natural", "pgd", "trades", "free", "fgsm")

METHOD_DESCRIPTIONS: dict[str, str] = {
    "natural": "natural training: cross-entropy on clean augmented images",
    "pgd": (
        "PGD adversarial training (Madry et al. 2018): untargeted l-inf PGD with random start, "
        "generated with the model in eval mode, then a training step on the adversarial batch"
    ),
    "trades": (
        "TRADES (Zhang et al. 2019): CE(f(x), y) + beta * KL(f(x) || f(x')), x' from PGD on "
        "the KL term started at x + 0.001*N(0, 1), as in yaodongyu/TRADES"
    ),
    "free": (
        "free adversarial training (Shafahi et al. 2019): each minibatch replayed m times, "
        "weights and a persistent perturbation updated from the same backward pass; "
        "epochs divided by m (rounded up)"
    ),
    "fgsm": (
        "fast adversarial training (Wong, Rice, Kolter 2020): one FGSM step of size alpha from a "
        "uniform random start in the eps-ball, generated in train mode, then a training step on "
        "the adversarial batch"
    ),
}

#: Schedules of the learning rate: the paper's step drop (App. D.1) or a one-cycle
#: schedule (Smith & Topin 2019: linear warm-up from peak/25, cosine decay to 0, set
#: every step), which reaches far higher accuracy on a short CPU budget.
SCHEDULES: tuple[str, ...] = ("step", "onecycle")

#: FGSM step size of fast AT as a multiple of ε (Wong et al. 2020: α = 1.25·ε).
FGSM_ALPHA_FACTOR = 1.25

#: The paper, for cards.
PAPER = (
    "Xiao, Zhong, Zheng, 'Enhancing Adversarial Defense by k-Winners-Take-All', "
    "ICLR 2020 (arXiv:1905.10510)"
)

#: App. D.1: learning rate 0.1 for epochs 1-50, 0.01 for 51-80.
PAPER_EPOCHS = 80
PAPER_LR_DROP = 50

#: Step size of the training attacks. The paper does not state it; 0.007 is the
#: TRADES reference value for ε = 0.031 (≈ Madry's 2/255).
DEFAULT_PGD_ALPHA = 0.007
#: PGD iterations: 8 for adversarial training (App. D.1); the TRADES reference
#: implementation the paper uses (App. D.1) runs 10.
DEFAULT_PGD_STEPS: dict[str, int] = {"pgd": 8, "trades": 10}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

#: Fields of :class:`TrainConfig` that do not change what is trained (where
#: outputs go, how progress is shown); a checkpoint may be resumed with other values.
#: ``init_from`` is pinned by ``init_sha256`` where it matters, not by its path; ``data``
#: names where the images are, which may move between sessions (``../shared/…`` or an
#: absolute path to the same file).
RUN_FIELDS = frozenset(
    {"out_dir", "name", "device", "weights_dtype", "eval_n", "progress", "init_from", "data"}
)


@dataclass
class TrainConfig:
    """Everything that defines a training run (App. D.1 defaults).

    Attributes:
        arch: Architecture name for :func:`models.build_model` (``"resnet18"``).
        width: Channels of the first ResNet stage (64 in the paper).
        act: ``"relu"``, ``"kwta"`` or ``"lwta"``.
        ratio: Final k-WTA sparsity ratio γ (γ1 when training incrementally).
        group_size: LWTA group size (App. D.3).
        method: ``"natural"``, ``"pgd"``, ``"trades"`` or ``"free"``.
        epochs: Main-phase epochs (80 in App. D.1). For free AT these are
            "effective" epochs: ``ceil(epochs / free_replays)`` passes are made.
        batch_size: Minibatch size (256).
        lr: Initial learning rate (0.1).
        lr_drop_epoch: Epoch after which the learning rate is multiplied by
            ``lr_drop_factor``; ``None``: ``round(epochs · 50/80)``.
        lr_drop_factor: 0.1 (0.1 → 0.01).
        momentum: SGD momentum (0.9).
        weight_decay: 5e-4 (kuangliu/pytorch-cifar; not stated in the paper).
        eps: ℓ∞ radius of the training attacks (0.031, App. D.1).
        pgd_steps: PGD iterations; ``None``: 8 for PGD-AT, 10 for TRADES.
        pgd_alpha: PGD step size (0.007; not stated in the paper).
        trades_beta: TRADES β = 1/λ (6).
        free_replays: Free-AT replays m (8).
        incremental_from: γ0 of incremental fine-tuning, or ``None``.
        incremental_delta: δ, the decrement of γ per fine-tuning step (0.005).
        incremental_epochs: Epochs per fine-tuning step (2).
        augment: Random crop (4-pixel zero padding) + horizontal flip.
        data: CIFAR-10 location for :func:`kwta.data.cifar10` (``None``:
            ``$KWTA_DATA`` or the bundled sample).
        subset: Train on a class-balanced subset of this many images.
        seed: Seed for initialisation, subset, shuffling, augmentation, attacks.
        device: ``None``: CUDA when present, else CPU.
        amp: Precision of the fast path (:mod:`kwta.precision`): ``"auto"``
            (bf16 on CUDA and on CPUs with native bf16, fp16 on older CUDA
            GPUs, fp32 elsewhere), ``"bf16"``, ``"fp16"`` or ``"fp32"``/``"off"``.
        channels_last: Use the channels-last memory format (CPU and CUDA).
        eval_n: Test images for the held-out clean accuracy written to the
            card (``None``: the whole test split, ``0``: skip).
        out_dir: Folder for the weights, card and checkpoints (``None``: write nothing).
        name: Model name (file stem); ``None``: derived from the configuration.
        weights_dtype: ``"float16"`` (default), ``"bfloat16"`` or ``"float32"``.
        progress: Show tqdm bars (``None``: only when stderr is a terminal).
        schedule: ``"step"`` (App. D.1's drop) or ``"onecycle"`` (peak ``lr``,
            reached after the ``warmup`` fraction of all steps, then cosine to 0).
        warmup: Fraction of the steps spent warming up in the one-cycle schedule.
        nesterov: Nesterov momentum.
        label_smoothing: Label smoothing of the training cross-entropy (0: none).
        init_from: Weights (a ``.safetensors`` file) to start from instead of a
            random initialisation, e.g. the k-WTA-0.2 model that incremental
            fine-tuning lowers to 0.1 (Sec. 2.2).
        init_sha256: The sha256 ``init_from`` must have (checked before loading;
            ``None``: recorded, not checked).
        fgsm_alpha: Step of fast AT (``None``: 1.25·ε).
    """

    arch: str = "resnet18"
    width: int = 64
    act: str = "relu"
    ratio: float = 0.1
    group_size: int = 10
    method: str = "natural"
    epochs: int = PAPER_EPOCHS
    batch_size: int = 256
    lr: float = 0.1
    lr_drop_epoch: int | None = None
    lr_drop_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eps: float = 0.031
    pgd_steps: int | None = None
    pgd_alpha: float = DEFAULT_PGD_ALPHA
    trades_beta: float = 6.0
    free_replays: int = 8
    incremental_from: float | None = None
    incremental_delta: float = 0.005
    incremental_epochs: int = 2
    augment: bool = True
    data: str | None = None
    subset: int | None = None
    seed: int = 0
    device: str | None = None
    amp: str = "auto"
    channels_last: bool = True
    eval_n: int | None = None
    out_dir: str | None = None
    name: str | None = None
    weights_dtype: str = "float16"
    progress: bool | None = None
    schedule: str = "step"
    warmup: float = 0.25
    nesterov: bool = False
    label_smoothing: float = 0.0
    init_from: str | None = None
    init_sha256: str | None = None
    fgsm_alpha: float | None = None

    def validate(self) -> TrainConfig:
        """Check every field; return ``self``.

        Raises:
            ValueError: With a message naming the bad field.
        """
        from models import ARCHITECTURES

        from .activations import registered_acts

        if self.arch not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.arch!r}; choose from {sorted(ARCHITECTURES)}"
            )
        if self.arch == "mlp":
            raise ValueError("the mlp architecture is the 1-D toy of Fig. 1, not a CIFAR-10 model")
        if self.act not in registered_acts():
            raise ValueError(f"unknown activation {self.act!r}; choose from {registered_acts()}")
        if self.method not in METHODS:
            raise ValueError(
                f"unknown training method {self.method!r}; choose from {list(METHODS)}"
            )
        check_ratio(self.ratio)
        for name in ("width", "epochs", "batch_size", "group_size", "free_replays"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.incremental_epochs < 1:
            raise ValueError(f"incremental_epochs must be >= 1, got {self.incremental_epochs}")
        for name in ("lr", "eps", "pgd_alpha", "incremental_delta", "lr_drop_factor"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("momentum", "weight_decay", "trades_beta"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if self.lr_drop_epoch is not None and self.lr_drop_epoch < 0:
            raise ValueError(f"lr_drop_epoch must be >= 0, got {self.lr_drop_epoch}")
        if self.pgd_steps is not None and self.pgd_steps < 1:
            raise ValueError(f"pgd_steps must be >= 1, got {self.pgd_steps}")
        if self.incremental_from is not None:
            if self.act != "kwta":
                raise ValueError("incremental fine-tuning (Sec. 2.2) needs act='kwta'")
            check_ratio(self.incremental_from)
            if self.incremental_from < self.ratio:
                raise ValueError(
                    f"incremental_from (γ0 = {self.incremental_from}) must be >= the target "
                    f"ratio (γ1 = {self.ratio})"
                )
        if self.subset is not None and self.subset < 1:
            raise ValueError(f"subset must be a positive number of images, got {self.subset}")
        if self.eval_n is not None and self.eval_n < 0:
            raise ValueError(f"eval_n must be >= 0, got {self.eval_n}")
        if self.amp not in PRECISIONS:
            raise ValueError(f"amp (precision) must be one of {PRECISIONS}, got {self.amp!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (isinstance(self.warmup, (int, float)) and 0.0 < self.warmup < 1.0):
            raise ValueError(f"warmup must be a fraction in (0, 1), got {self.warmup!r}")
        if not (
            isinstance(self.label_smoothing, (int, float)) and 0.0 <= self.label_smoothing < 1.0
        ):
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.fgsm_alpha is not None and not (
            math.isfinite(self.fgsm_alpha) and self.fgsm_alpha > 0
        ):
            raise ValueError(f"fgsm_alpha must be a positive number, got {self.fgsm_alpha!r}")
        if self.weights_dtype not in _DTYPES:
            raise ValueError(
                f"weights_dtype must be one of {sorted(_DTYPES)}, got {self.weights_dtype!r}"
            )
        if self.name is not None and not _NAME_RE.match(self.name):
            raise ValueError(
                f"model name {self.name!r}: use letters, digits, '.', '_' or '-' "
                "(at most 100, starting with a letter or digit)"
            )
        return self

    @property
    def act_kwargs(self) -> dict[str, Any]:
        """Activation arguments of the *final* model."""
        if self.act == "kwta":
            return {"ratio": float(self.ratio)}
        if self.act == "lwta":
            return {"group_size": int(self.group_size)}
        return {}

    @property
    def arch_kwargs(self) -> dict[str, Any]:
        """``arch_kwargs`` of the card (the final model)."""
        kwargs: dict[str, Any] = {"act": self.act, "act_kwargs": self.act_kwargs}
        if self.arch == "resnet18":
            kwargs["width"] = int(self.width)
        elif self.arch == "mlp":
            raise ValueError("the mlp architecture is the 1-D toy of Fig. 1, not a CIFAR model")
        return kwargs

    @property
    def steps(self) -> int:
        """PGD iterations actually used."""
        return (
            self.pgd_steps if self.pgd_steps is not None else DEFAULT_PGD_STEPS.get(self.method, 8)
        )

    def default_name(self) -> str:
        """A file-safe name such as ``resnet18-w64-kwta0.1-pgd-s0``."""
        act = self.act
        if self.act == "kwta":
            act = f"kwta{self.ratio:g}"
        elif self.act == "lwta":
            act = f"lwta{self.group_size}"
        return f"{self.arch}-w{self.width}-{act}-{self.method}-s{self.seed}"

    def training_fields(self) -> dict[str, Any]:
        """The fields that determine the trained weights (all but :data:`RUN_FIELDS`)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUN_FIELDS}


_DTYPES: dict[str, torch.dtype | None] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
}


# --------------------------------------------------------------------------- schedule


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


def _lr_drop(config: TrainConfig) -> int:
    if config.lr_drop_epoch is not None:
        return config.lr_drop_epoch
    return _round_half_up(config.epochs * PAPER_LR_DROP / PAPER_EPOCHS)


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
    drop = _round_half_up(_lr_drop(config) / m)
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


def _compress(plan: list[EpochPlan], key: str) -> list[dict[str, Any]]:
    """``[{"from_epoch": i, key: value}, …]`` at each change of ``key``."""
    out: list[dict[str, Any]] = []
    for p in plan:
        value = getattr(p, key)
        if not out or out[-1][key] != value:
            out.append({"from_epoch": p.index, key: value})
    return out


# --------------------------------------------------------------------------- pieces


def augment(
    images: Tensor, generator: torch.Generator, *, padding: int = 4, flip: bool = True
) -> Tensor:
    """Random crop with zero padding and random horizontal flip, batch-wise on tensors.

    The standard CIFAR-10 augmentation of kuangliu/pytorch-cifar (App. D.1),
    done with one gather on whatever device ``images`` lives on. Random numbers
    come from ``generator`` (a CPU generator), so results do not depend on the device.

    Args:
        images: ``(B, C, H, W)`` batch (any dtype).
        generator: CPU random generator.
        padding: Zero padding on every side before the crop (4).
        flip: Also flip half of the images horizontally.

    Returns:
        A new ``(B, C, H, W)`` batch.
    """
    b, c, h, w = images.shape
    dev = images.device
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator).to(dev)
    flips = (torch.rand(b, generator=generator) < 0.5).to(dev)
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = offsets[0][:, None] + torch.arange(h, device=dev)
    cols = offsets[1][:, None] + torch.arange(w, device=dev)
    if flip:
        cols = torch.where(flips[:, None], cols.flip(1), cols)
    return padded[
        torch.arange(b, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, epoch)``: no RNG state to checkpoint."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


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


def _pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    generator: torch.Generator,
    amp_ctx: Callable[[], contextlib.AbstractContextManager[Any]],
    target_probs: Tensor | None = None,
) -> Tensor:
    """ℓ∞ PGD for training: on the CE loss (Madry) or, with ``target_probs``, on
    ``KL(target ‖ f(x'))`` (TRADES). Gradients are taken w.r.t. the input only."""
    if target_probs is None:  # Madry: uniform random start in the ε-ball
        noise = torch.empty(x.shape).uniform_(-eps, eps, generator=generator)
    else:  # TRADES: x + 0.001·N(0, 1)
        noise = 0.001 * torch.randn(x.shape, generator=generator)
    x_adv = (x + noise.to(x.device, x.dtype)).clamp_(0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with amp_ctx():
            logits = model(x_adv)
        logits = logits.float()
        if target_probs is None:
            loss = F.cross_entropy(logits, y, reduction="sum")
        else:
            loss = F.kl_div(F.log_softmax(logits, dim=1), target_probs, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    return x_adv.detach()


@dataclass
class EpochRecord:
    """What one pass over the data did (one ``history`` entry of the card).

    ``loss``/``accuracy`` are running averages over the examples actually
    trained on: clean for natural training and TRADES (its accuracy is on the
    clean logits, its loss the full TRADES objective), adversarial for PGD-AT
    and free AT (all ``m`` replays).
    """

    epoch: int
    phase: str
    ratio: float | None
    lr: float
    loss: float
    accuracy: float
    n: int
    seconds: float


@dataclass
class TrainState:
    """Mutable state of a run: what a checkpoint holds besides the configuration."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None = None
    free_delta: Tensor | None = None
    epoch: int = 0  # passes completed
    history: list[EpochRecord] = field(default_factory=list)
    wall_time: float = 0.0


def train_epoch(
    state: TrainState,
    images: Tensor,
    labels: Tensor,
    config: TrainConfig,
    *,
    generator: torch.Generator,
    amp: str = "off",
    progress: bool = False,
    desc: str = "train",
    lr_at: Callable[[int], float] | None = None,
) -> tuple[float, float, int]:
    """One pass over ``images`` with the configured method (App. D.1).

    Learning rate and k-WTA ratio must already be set (see :func:`train`).

    Args:
        state: Model, optimiser, loss scaler and free-AT perturbation; updated in place.
        images: ``uint8`` ``(N, 3, 32, 32)`` on the training device.
        labels: ``int64`` ``(N,)`` on the same device.
        config: The run's configuration (method and its hyper-parameters).
        generator: CPU generator for shuffling, augmentation and attack starts.
        amp: Resolved autocast mode (``"bf16"``, ``"fp16"`` or ``"off"``).
        progress: Show a tqdm bar.
        desc: Label of the bar.
        lr_at: Learning rate of the i-th minibatch of this pass (per-step
            schedules such as one-cycle); ``None``: leave the optimiser's as set.

    Returns:
        ``(mean loss, accuracy, examples)`` over the examples trained on.
    """
    model, opt, scaler = state.model, state.optimizer, state.scaler
    dev = images.device
    channels_last = config.channels_last and model_is_channels_last(model)
    smoothing = float(config.label_smoothing)
    n = len(labels)
    perm = torch.randperm(n, generator=generator).to(dev)

    def amp_ctx() -> contextlib.AbstractContextManager[Any]:
        return autocast(dev, amp)

    def ce(logits: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), y, label_smoothing=smoothing)

    def step(loss: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    # Running sums stay on the device: no host synchronisation per step.
    tot_loss = torch.zeros((), device=dev, dtype=torch.float32)
    tot_correct = torch.zeros((), device=dev, dtype=torch.int64)
    tot_n = 0

    def tally(loss: Tensor, logits: Tensor, y: Tensor) -> None:
        nonlocal tot_loss, tot_correct, tot_n
        tot_loss = tot_loss + loss.detach().float() * len(y)
        tot_correct = tot_correct + (logits.detach().argmax(1) == y).sum()
        tot_n += len(y)

    n_batches = math.ceil(n / config.batch_size)
    bar = tqdm(total=n_batches, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    try:
        for i, sl in enumerate(batches(n, config.batch_size)):
            if lr_at is not None:
                for group in opt.param_groups:
                    group["lr"] = lr_at(i)
            idx = perm[sl]
            xb = images[idx]
            if config.augment:
                xb = augment(xb, generator)
            x = xb.float().div_(255.0)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = labels[idx]
            b = len(y)
            if config.method == "natural":
                model.train()
                with amp_ctx():
                    logits = model(x)
                loss = ce(logits, y)
                step(loss)
                tally(loss, logits, y)
            elif config.method == "pgd":
                model.eval()  # attack with BatchNorm's running statistics, leaving them as they are
                x_adv = _pgd(
                    model,
                    x,
                    y,
                    eps=config.eps,
                    alpha=config.pgd_alpha,
                    steps=config.steps,
                    generator=generator,
                    amp_ctx=amp_ctx,
                )
                model.train()
                with amp_ctx():
                    logits = model(x_adv)
                loss = ce(logits, y)
                step(loss)
                tally(loss, logits, y)
            elif config.method == "fgsm":  # fast AT (Wong, Rice, Kolter 2020), in train mode
                model.train()
                alpha = config.fgsm_alpha or FGSM_ALPHA_FACTOR * config.eps
                noise = torch.empty(x.shape).uniform_(-config.eps, config.eps, generator=generator)
                delta = noise.to(dev, x.dtype)
                if channels_last:
                    delta = delta.contiguous(memory_format=torch.channels_last)
                delta.requires_grad_(True)
                with amp_ctx():
                    adv_logits = model((x + delta).clamp(0.0, 1.0))
                (g_delta,) = torch.autograd.grad(F.cross_entropy(adv_logits.float(), y), delta)
                delta = (delta.detach() + alpha * g_delta.sign()).clamp_(-config.eps, config.eps)
                x_adv = (x + delta).clamp_(0.0, 1.0)
                with amp_ctx():
                    logits = model(x_adv)
                loss = ce(logits, y)
                step(loss)
                tally(loss, logits, y)
            elif config.method == "trades":
                model.eval()
                with torch.no_grad(), amp_ctx():
                    p_nat = F.softmax(model(x).float(), dim=1)
                x_adv = _pgd(
                    model,
                    x,
                    y,
                    eps=config.eps,
                    alpha=config.pgd_alpha,
                    steps=config.steps,
                    generator=generator,
                    amp_ctx=amp_ctx,
                    target_probs=p_nat,
                )
                model.train()
                with amp_ctx():
                    logits = model(x).float()
                    logits_adv = model(x_adv).float()
                loss_nat = F.cross_entropy(logits, y)
                loss_rob = (
                    F.kl_div(
                        F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="sum"
                    )
                    / b
                )
                loss = loss_nat + config.trades_beta * loss_rob
                step(loss)
                tally(loss, logits, y)
            else:  # free adversarial training (Shafahi et al. 2019)
                model.train()
                if state.free_delta is None:
                    state.free_delta = torch.zeros(
                        (config.batch_size, *x.shape[1:]), device=dev, dtype=torch.float32
                    )
                for _ in range(config.free_replays):
                    delta = state.free_delta[:b].clone().requires_grad_(True)
                    x_adv = (x + delta).clamp(0.0, 1.0)
                    with amp_ctx():
                        logits = model(x_adv)
                    loss = ce(logits, y)
                    step(loss)  # one backward: grads of the weights and of δ
                    grad = delta.grad
                    assert grad is not None
                    grad = torch.nan_to_num(grad, nan=0.0)
                    state.free_delta[:b] = (delta.detach() + config.eps * grad.sign()).clamp_(
                        -config.eps, config.eps
                    )
                    tally(loss, logits, y)
            bar.update(1)
            if progress and (bar.n % 20 == 0 or bar.n == n_batches):
                bar.set_postfix(
                    loss=f"{float(tot_loss) / max(tot_n, 1):.3f}",
                    acc=f"{int(tot_correct) / max(tot_n, 1):.3f}",
                )
    finally:
        bar.close()
    return float(tot_loss) / max(tot_n, 1), int(tot_correct) / max(tot_n, 1), tot_n


# --------------------------------------------------------------------------- checkpoints


def flatten_optimizer_state(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into tensors (for safetensors) and JSON-able data.

    Returns:
        ``(tensors, meta)``: ``tensors["optimizer.state.<param>.<key>"]`` (e.g.
        the SGD momentum buffers) and ``meta = {"param_groups": …, "scalars": …}``.
    """
    sd = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            name = f"{pid}.{key}"
            if isinstance(value, Tensor):
                tensors[f"optimizer.state.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`: a state dict for ``load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    prefix = "optimizer.state."
    for key, value in tensors.items():
        if key.startswith(prefix):
            pid, name = key[len(prefix) :].split(".", 1)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def checkpoint_dir(out_dir: str | os.PathLike[str], name: str) -> Path:
    """Where a run's checkpoint lives: ``<out_dir>/<name>.ckpt/``."""
    return Path(out_dir) / f"{name}.ckpt"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | os.PathLike[str], state: TrainState, config: TrainConfig
) -> Path:
    """Write ``checkpoint.safetensors`` (model, optimiser, free-AT δ) and ``checkpoint.json``.

    The JSON is written last and pins the tensors file's sha256, so a crash
    mid-write never leaves a checkpoint that looks complete.

    Returns:
        The JSON path.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"model.{k}": v.detach().to("cpu").contiguous() for k, v in state.model.state_dict().items()
    }
    opt_tensors, opt_meta = flatten_optimizer_state(state.optimizer)
    tensors.update(opt_tensors)
    if state.free_delta is not None:
        tensors["free_delta"] = state.free_delta.detach().to("cpu").contiguous()
    weights = d / "checkpoint.safetensors"
    tmp = d / "checkpoint.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, weights)
    meta = {
        "format": "kwta-checkpoint/1",
        "epoch": state.epoch,
        "sha256": sha256_of(weights),
        "optimizer": opt_meta,
        "scaler": state.scaler.state_dict() if state.scaler is not None else None,
        "history": [dataclasses.asdict(r) for r in state.history],
        "wall_time": state.wall_time,
        "config": dataclasses.asdict(config),
    }
    path = d / "checkpoint.json"
    _atomic_write_text(path, json.dumps(meta, indent=1) + "\n")
    return path


def load_checkpoint(
    directory: str | os.PathLike[str], state: TrainState, config: TrainConfig
) -> None:
    """Restore ``state`` in place from :func:`save_checkpoint`'s files.

    Raises:
        FileNotFoundError: No checkpoint there.
        ValueError: The checkpoint is corrupt or was made with a different
            configuration (only :data:`RUN_FIELDS` may differ).
    """
    d = Path(directory)
    path = d / "checkpoint.json"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint to resume from in {d}")
    meta = json.loads(path.read_text())
    weights = d / "checkpoint.safetensors"
    if not weights.is_file() or sha256_of(weights) != meta.get("sha256"):
        raise ValueError(f"checkpoint {weights} is missing or does not match {path.name}")
    saved = {k: v for k, v in meta["config"].items() if k not in RUN_FIELDS}
    now = config.training_fields()
    diff = {
        k: (saved.get(k), now.get(k)) for k in set(saved) | set(now) if saved.get(k) != now.get(k)
    }
    if diff:
        listed = ", ".join(
            f"{k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in sorted(diff.items())
        )
        raise ValueError(f"cannot resume {d}: the configuration differs ({listed})")
    tensors = load_file(str(weights))
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    state.model.load_state_dict(model_state, strict=True)
    opt_sd = unflatten_optimizer_state(tensors, meta["optimizer"])
    state.optimizer.load_state_dict(opt_sd)
    dev = next(state.model.parameters()).device
    state.free_delta = tensors["free_delta"].to(dev) if "free_delta" in tensors else None
    if state.scaler is not None and meta.get("scaler"):
        state.scaler.load_state_dict(meta["scaler"])
    state.epoch = int(meta["epoch"])
    state.history = [EpochRecord(**r) for r in meta["history"]]
    state.wall_time = float(meta.get("wall_time", 0.0))


# --------------------------------------------------------------------------- the run


def portable_source(source: str) -> str:
    """``kind:file-name`` of a data source: no machine's folder ever goes into a card."""
    kind, _, where = source.partition(":")
    if not where:
        return source
    return f"{kind}:{Path(where.rstrip('/')).name}"


def data_provenance(source: str) -> dict[str, Any]:
    """Card entry for a data source (:attr:`CIFAR10Tensors.source`), saying plainly whether
    it is the JPEG copy. The location is reduced to its last name (:func:`portable_source`)."""
    kind = source.split(":", 1)[0]
    source = portable_source(source)
    if kind in ("jpeg-tarball", "bundled-sample"):
        note = (
            "JPEG copy of CIFAR-10 (quality 75): pixels differ slightly from the canonical "
            "binary batches, so accuracies are not exactly comparable with the paper's"
        )
        if kind == "bundled-sample":
            note = "small bundled sample of real CIFAR-10 images; " + note
        return {"source": source, "jpeg_copy": True, "note": note}
    if kind == "image-folder":
        return {
            "source": source,
            "jpeg_copy": None,
            "note": "image-folder copy of CIFAR-10 (JPEG-compressed if its files are .jpg)",
        }
    return {"source": source, "jpeg_copy": False, "note": "canonical CIFAR-10 binary batches"}


def device_name(device: torch.device) -> str:
    """Human-readable name of ``device`` for cards."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine() or "unknown CPU"
    return f"{device.type}: {cpu} ({torch.get_num_threads()} threads)"


def _version() -> str:
    try:
        from . import __version__

        return str(__version__)
    except ImportError:  # a broken editable install can make ``kwta`` a namespace package
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("kwta-explorer")
        except PackageNotFoundError:
            return "unknown"


def _load_init(model: nn.Module, config: TrainConfig) -> str:
    """Load ``config.init_from`` into ``model`` (strict); return the file's sha256.

    Raises:
        FileNotFoundError: No such weights file.
        ValueError: Its sha256 differs from ``config.init_sha256``, or its tensors
            do not fit the architecture.
    """
    assert config.init_from is not None
    path = Path(config.init_from)
    if not path.is_file():
        raise FileNotFoundError(f"init_from: no weights file {path}")
    data = path.read_bytes()
    import hashlib

    digest = hashlib.sha256(data).hexdigest()
    if config.init_sha256 is not None and digest != config.init_sha256:
        raise ValueError(
            f"init_from {path.name}: sha256 {digest[:16]}… differs from the expected "
            f"{config.init_sha256[:16]}…"
        )
    from safetensors.torch import load as load_bytes

    tensors = load_bytes(data)
    own = model.state_dict()
    try:
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in tensors.items()}, strict=True)
    except (KeyError, RuntimeError) as err:
        raise ValueError(f"init_from {path.name} does not fit {config.arch}: {err}") from None
    log.info("initialised from %s (sha256 %s…)", path.name, digest[:16])
    return digest


def train(
    config: TrainConfig,
    *,
    train_data: CIFAR10Tensors | None = None,
    test_data: CIFAR10Tensors | None = None,
    resume: bool = False,
    callback: Callable[[EpochRecord], None] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a network as configured (Sec. 2.2, App. D.1) and write it with its card.

    Args:
        config: The run (validated here).
        train_data: Training images; ``None``: ``kwta.data.cifar10("train", config.data)``.
        test_data: Held-out images for the card's clean accuracy; ``None``:
            ``cifar10("test", config.data)`` (skipped with a warning if unavailable).
        resume: Continue from the checkpoint in ``<out_dir>/<name>.ckpt`` (needs
            ``out_dir``); the result equals that of an uninterrupted run.
        callback: Called after every pass (after its checkpoint is written)
            with that pass's :class:`EpochRecord`.

    Returns:
        ``(model, card)``: the final model in eval mode, on the training device,
        with its weights rounded to ``weights_dtype`` exactly as saved (so it
        gives the same logits as the loaded file), and the card (as written
        when ``out_dir`` is set).
    """
    from models import build_model

    config.validate()
    name = config.name or config.default_name()
    if not _NAME_RE.match(name):
        raise ValueError(f"model name {name!r} is not file-safe")
    if resume and config.out_dir is None:
        raise ValueError("resume needs out_dir (where the checkpoint is)")
    device = default_device(config.device)
    amp = resolve_precision(config.amp, device)
    progress = config.progress if config.progress is not None else sys.stderr.isatty()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    if train_data is None:
        train_data = cifar10("train", config.data)
    indices = (
        train_data.balanced_indices(config.subset, seed=config.seed)
        if config.subset is not None
        else None
    )
    images = train_data.images[indices] if indices is not None else train_data.images
    labels = train_data.labels[indices] if indices is not None else train_data.labels
    images, labels = images.to(device), labels.to(device)
    log.info("training on %d images from %s (device %s)", len(labels), train_data.source, device)

    plan = epoch_plan(config)
    seed_all(config.seed)
    first_ratio = plan[0].ratio if plan and plan[0].ratio is not None else config.ratio
    act_kwargs = dict(config.act_kwargs)
    if config.act == "kwta":
        act_kwargs["ratio"] = first_ratio
    arch_kwargs = dict(config.arch_kwargs, act_kwargs=act_kwargs)
    model = build_model(config.arch, **arch_kwargs)
    init_sha = _load_init(model, config) if config.init_from is not None else None
    model = model.to(device)
    channels_last = config.channels_last and channels_last_safe(model, device)
    if config.channels_last and not channels_last:
        log.warning("channels-last skipped: 1x1 convolutions this narrow crash oneDNN on a CPU")
    if channels_last:
        model = to_channels_last(model)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov and config.momentum > 0,
    )
    steps_per_pass = math.ceil(len(labels) / config.batch_size)
    total_steps = steps_per_pass * len(plan)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    state = TrainState(model=model, optimizer=optimizer, scaler=scaler)

    ckpt = checkpoint_dir(config.out_dir, name) if config.out_dir is not None else None
    if resume:
        assert ckpt is not None
        load_checkpoint(ckpt, state, config)
        log.info("resumed from %s after %d of %d passes", ckpt, state.epoch, len(plan))

    for p in plan[state.epoch :]:
        if p.ratio is not None:
            set_ratio(model, p.ratio)
        for group in optimizer.param_groups:
            group["lr"] = p.lr
        lr_at = None
        if config.schedule == "onecycle":

            def lr_at(i: int, first: int = p.index * steps_per_pass) -> float:
                return onecycle_lr(first + i, total_steps, config.lr, config.warmup)

        t0 = time.perf_counter()
        loss, acc, n = train_epoch(
            state,
            images,
            labels,
            config,
            generator=_epoch_generator(config.seed, p.index),
            amp=amp,
            progress=progress,
            desc=f"epoch {p.index + 1}/{len(plan)}",
            lr_at=lr_at,
        )
        seconds = time.perf_counter() - t0
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} in pass {p.index + 1}")
        record = EpochRecord(
            epoch=p.index,
            phase=p.phase,
            ratio=p.ratio,
            lr=p.lr if lr_at is None else float(optimizer.param_groups[0]["lr"]),
            loss=loss,
            accuracy=acc,
            n=n,
            seconds=seconds,
        )
        state.history.append(record)
        state.epoch = p.index + 1
        state.wall_time += seconds
        log.info(
            "pass %d/%d (%s) ratio=%s lr=%g: loss %.4f, accuracy %.4f (%.1fs)",
            p.index + 1,
            len(plan),
            p.phase,
            p.ratio,
            p.lr,
            loss,
            acc,
            seconds,
        )
        if ckpt is not None:
            save_checkpoint(ckpt, state, config)
        if callback is not None:
            callback(record)

    if config.act == "kwta" and get_ratio(model) != config.ratio:  # e.g. resuming a finished run
        set_ratio(model, config.ratio)
    model.eval()
    if channels_last:  # hand back the layout a loaded model has: same logits, bit for bit
        model = model.to(memory_format=torch.contiguous_format)
    wdtype = _DTYPES[config.weights_dtype]
    if wdtype is not None and wdtype != torch.float32:
        with torch.no_grad():  # what is measured and returned is exactly what is saved
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.copy_(t.to(wdtype).to(t.dtype))

    metrics: dict[str, Any] = {}
    if state.history:
        last = state.history[-1]
        metrics.update(
            train_loss=last.loss,
            train_accuracy=last.accuracy,
            train_metrics_note=(
                "running averages over the last pass, on the examples trained on "
                "(adversarial for pgd/free, clean for natural/trades), in train mode"
            ),
        )
    test_info: dict[str, Any] | None = None
    if config.eval_n != 0:
        try:
            test = test_data if test_data is not None else cifar10("test", config.data)
        except Exception as err:  # data.DataSourceError and friends: the card just lacks it
            log.warning("no test split for the held-out accuracy: %s", err)
            test = None
        if test is not None:
            from .evaluate import clean_accuracy

            n_eval = len(test) if config.eval_n is None else min(config.eval_n, len(test))
            idx = test.balanced_indices(n_eval, seed=0)
            acc = clean_accuracy(
                model, test, indices=idx, batch_size=max(config.batch_size, 256), device=device
            )
            metrics.update(test_clean_accuracy=acc, test_clean_n=n_eval)
            test_info = data_provenance(test.source) | {
                "split": "test",
                "n": n_eval,
                "subset_rule": "all" if n_eval == len(test) else "balanced_indices(n, seed=0)",
            }
            log.info("held-out clean accuracy %.4f on %d test images", acc, n_eval)

    total_epochs = sum(
        (config.free_replays if config.method == "free" else 1) for _ in plan
    )  # effective epochs
    card: dict[str, Any] = {
        "name": name,
        "arch": config.arch,
        "arch_kwargs": config.arch_kwargs,
        "description": (
            f"{config.arch} (width {config.width}) with {config.act} activations, "
            f"{config.method} training"
        ),
        "paper": PAPER,
        "training": {
            "method": config.method,
            "method_description": METHOD_DESCRIPTIONS[config.method],
            "hyperparameters": config.training_fields()
            | {
                "pgd_steps": config.steps if config.method in ("pgd", "trades") else None,
                "data": Path(config.data).name if config.data else None,
                "init_from": Path(config.init_from).name if config.init_from else None,
            },
            "optimizer": {
                "name": "SGD",
                "momentum": config.momentum,
                "nesterov": bool(config.nesterov and config.momentum > 0),
                "weight_decay": config.weight_decay,
                "weight_decay_note": (
                    "5e-4 is the kuangliu/pytorch-cifar value; not stated in the paper"
                ),
                "batch_size": config.batch_size,
            },
            "augmentation": (
                "random 32x32 crop after 4-pixel zero padding + random horizontal flip "
                "(batch-wise on tensors)"
                if config.augment
                else "none"
            ),
            "epochs": {
                "main": config.epochs,
                "passes": len(plan),
                "main_passes": sum(p.phase == "main" for p in plan),
                "fine_tune_passes": sum(p.phase == "fine-tune" for p in plan),
                "effective_epochs": total_epochs,
                "note": (
                    f"free AT: epochs divided by m = {config.free_replays} (rounded up); each pass "
                    f"replays every minibatch {config.free_replays} times"
                    if config.method == "free"
                    else "one pass per epoch"
                ),
            },
            "schedule": {
                "kind": config.schedule,
                "lr": _compress(plan, "lr") if config.schedule == "step" else None,
                "ratio": _compress(plan, "ratio") if config.act == "kwta" else None,
                "lr_drop_epoch": _lr_drop(config) if config.schedule == "step" else None,
                "description": (
                    (
                        f"LR {config.lr:g} then x{config.lr_drop_factor:g} after "
                        f"{_lr_drop(config)} of {config.epochs} main epochs (App. D.1: 50 of 80, "
                        "scaled proportionally)"
                        if config.schedule == "step"
                        else f"one-cycle LR over all {total_steps} steps: linear warm-up from "
                        f"{config.lr / 25:g} to {config.lr:g} over the first {config.warmup:.0%}, "
                        "cosine decay to 0"
                    )
                    + (
                        f"; incremental fine-tuning (Sec. 2.2): γ {config.incremental_from:g} → "
                        f"{config.ratio:g} in steps of {config.incremental_delta:g} every "
                        f"{config.incremental_epochs} epochs"
                        if config.incremental_from is not None
                        else ""
                    )
                ),
            },
            "data": data_provenance(train_data.source)
            | {
                "split": "train",
                "train_images": len(labels),
                "subset": config.subset,
                "subset_rule": (
                    f"CIFAR10Tensors.balanced_indices({config.subset}, seed={config.seed})"
                    if config.subset is not None
                    else "all"
                ),
            },
            "loss": (
                f"cross-entropy with label smoothing {config.label_smoothing:g}"
                if config.label_smoothing
                else "cross-entropy"
            ),
            "init_from": (
                {"file": Path(config.init_from).name, "sha256": init_sha}
                if config.init_from is not None
                else None
            ),
            "seed": config.seed,
            "device": str(device),
            "device_name": device_name(device),
            "amp": amp,
            "channels_last": channels_last,
            "wall_time_s": round(state.wall_time, 3),
            "resumed": resume,
            "torch_version": torch.__version__,
            "kwta_version": _version(),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "history": [dataclasses.asdict(r) for r in state.history],
        },
        "metrics": metrics,
    }
    if test_info is not None:
        card["metrics"]["test_data"] = test_info
    if config.out_dir is not None:
        weights = Path(config.out_dir) / f"{name}.safetensors"
        card = save_model(model, weights, card, dtype=wdtype)
        log.info("wrote %s and %s", weights, weights.with_suffix(".json"))
    return model, card
