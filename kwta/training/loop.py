"""The training run: build or load the network, train every epoch of the
plan, checkpoint, evaluate held-out accuracy and publish weights plus card.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kwta import paper
from kwta._version import __version__
from kwta.data import CIFAR10Tensors, cifar10, data_provenance
from kwta.evaluation.clean import clean_accuracy
from kwta.models import build_model
from kwta.nn.activations import get_ratio, set_ratio
from kwta.nn.precision import (
    channels_last_safe,
    resolve_precision,
    to_channels_last,
)
from kwta.training.checkpoints import checkpoint_dir, load_checkpoint, save_checkpoint
from kwta.training.config import AMP_DTYPES, METHOD_DESCRIPTIONS, NAME_RE, TrainConfig
from kwta.training.epoch import EpochRecord, TrainState, epoch_generator, train_epoch
from kwta.training.schedules import compress_plan, epoch_plan, onecycle_lr, resolved_lr_drop
from kwta.utils import default_device, device_name, seed_all
from kwta.zoo.hub import save_model

__all__ = [
    "train",
]

log = logging.getLogger(__name__)


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
    on_step: Callable[[int], None] | None = None,
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
        on_step: Called with the minibatch index after every training step.

    Returns:
        ``(model, card)``: the final model in eval mode, on the training device,
        with its weights rounded to ``weights_dtype`` exactly as saved (so it
        gives the same logits as the loaded file), and the card (as written
        when ``out_dir`` is set).
    """

    config.validate()
    name = config.name or config.default_name()
    if not NAME_RE.match(name):
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
        if state.epoch < len(plan):  # a finished run re-published is no resume
            state.resumes.append(state.epoch)
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
            generator=epoch_generator(config.seed, p.index),
            amp=amp,
            progress=progress,
            desc=f"epoch {p.index + 1}/{len(plan)}",
            lr_at=lr_at,
            on_step=on_step,
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
    wdtype = AMP_DTYPES[config.weights_dtype]
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
            n_eval = len(test) if config.eval_n is None else min(config.eval_n, len(test))
            idx = test.balanced_indices(n_eval, seed=0)
            acc = clean_accuracy(
                model, test, indices=idx, batch_size=max(config.batch_size, 256), device=device
            )
            metrics.update(clean_accuracy=acc, clean_n=n_eval)
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
        "paper": paper.CITATION,
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
                "lr": compress_plan(plan, "lr") if config.schedule == "step" else None,
                "ratio": compress_plan(plan, "ratio") if config.act == "kwta" else None,
                "lr_drop_epoch": resolved_lr_drop(config) if config.schedule == "step" else None,
                "description": (
                    (
                        f"LR {config.lr:g} then x{config.lr_drop_factor:g} after "
                        f"{resolved_lr_drop(config)} of {config.epochs} main epochs "
                        "(App. D.1: 50 of 80, "
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
            "resumed_after_passes": list(state.resumes),
            "torch_version": torch.__version__,
            "kwta_version": __version__,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "history": [dataclasses.asdict(r) for r in state.history],
        },
        "metrics": metrics,
    }
    if test_info is not None:
        card["metrics"]["clean_data"] = test_info
    if config.out_dir is not None:
        weights = Path(config.out_dir) / f"{name}.safetensors"
        card = save_model(model, weights, card, dtype=wdtype)
        log.info("wrote %s and %s", weights, weights.with_suffix(".json"))
    return model, card
