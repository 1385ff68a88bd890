"""The training configuration (:class:`TrainConfig`) and the paper's training
settings (Sec. 2.2, App. D.1), named once.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import torch

from kwta import paper
from kwta.models import ARCHITECTURES
from kwta.nn.functional import check_ratio
from kwta.nn.precision import (
    PRECISIONS,
)
from kwta.nn.registry import registered_acts

__all__ = [
    "AMP_DTYPES",
    "DEFAULT_PGD_STEPS",
    "FGSM_ALPHA_FACTOR",
    "METHODS",
    "METHOD_DESCRIPTIONS",
    "NAME_RE",
    "RUN_FIELDS",
    "SCHEDULES",
    "Method",
    "TrainConfig",
]


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


#: PGD iterations per training method (App. D.1; TRADES: its reference code's 10).
DEFAULT_PGD_STEPS: dict[str, int] = {
    "pgd": paper.TRAIN_PGD_STEPS,
    "trades": paper.TRAIN_TRADES_STEPS,
}


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


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
        amp: Precision of the fast path (:mod:`kwta.nn.precision`): ``"auto"``
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
    epochs: int = paper.EPOCHS
    batch_size: int = 256
    lr: float = 0.1
    lr_drop_epoch: int | None = None
    lr_drop_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eps: float = paper.EPS
    pgd_steps: int | None = None
    pgd_alpha: float = paper.TRAIN_STEP_SIZE
    trades_beta: float = paper.TRADES_BETA
    free_replays: int = paper.FREE_REPLAYS
    incremental_from: float | None = None
    incremental_delta: float = paper.INCREMENTAL_DELTA
    incremental_epochs: int = paper.INCREMENTAL_EPOCHS
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
        if self.weights_dtype not in AMP_DTYPES:
            raise ValueError(
                f"weights_dtype must be one of {sorted(AMP_DTYPES)}, got {self.weights_dtype!r}"
            )
        if self.name is not None and not NAME_RE.match(self.name):
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
            self.pgd_steps
            if self.pgd_steps is not None
            else DEFAULT_PGD_STEPS.get(self.method, paper.TRAIN_PGD_STEPS)
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


AMP_DTYPES: dict[str, torch.dtype | None] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
}
