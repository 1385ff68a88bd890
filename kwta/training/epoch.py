"""One training epoch for every method (natural, PGD-AT, TRADES, free AT, FGSM
with a random start), with the batch-wise augmentation of App. D.1.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from kwta.attacks._core import project_linf
from kwta.nn.precision import (
    autocast,
    model_is_channels_last,
)
from kwta.training.config import FGSM_ALPHA_FACTOR, TrainConfig
from kwta.utils import batches

__all__ = [
    "EpochRecord",
    "TrainState",
    "augment",
    "epoch_generator",
    "train_epoch",
]


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


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, epoch)``: no RNG state to checkpoint."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


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
        x_adv = project_linf(x_adv, x, eps)  # the attacks' exact projection
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
    resumes: list[int] = field(default_factory=list)  # passes completed at each resume


@dataclass
class _Step:
    """What a method's step needs: the batch, the run's settings and the shared actions."""

    state: TrainState
    config: TrainConfig
    x: Tensor
    y: Tensor
    generator: torch.Generator
    channels_last: bool
    amp_ctx: Callable[[], contextlib.AbstractContextManager[Any]]
    ce: Callable[[Tensor, Tensor], Tensor]
    update: Callable[[Tensor], None]  # backward + optimiser step
    tally: Callable[[Tensor, Tensor, Tensor], None]  # running loss and accuracy


def _natural_step(s: _Step) -> None:
    model = s.state.model
    model.train()
    with s.amp_ctx():
        logits = model(s.x)
    loss = s.ce(logits, s.y)
    s.update(loss)
    s.tally(loss, logits, s.y)


def _pgd_at_step(s: _Step) -> None:
    """Madry et al. (2018): train on PGD examples."""
    model, config = s.state.model, s.config
    model.eval()  # attack with BatchNorm's running statistics, leaving them as they are
    x_adv = _pgd(
        model,
        s.x,
        s.y,
        eps=config.eps,
        alpha=config.pgd_alpha,
        steps=config.steps,
        generator=s.generator,
        amp_ctx=s.amp_ctx,
    )
    model.train()
    with s.amp_ctx():
        logits = model(x_adv)
    loss = s.ce(logits, s.y)
    s.update(loss)
    s.tally(loss, logits, s.y)


def _fgsm_at_step(s: _Step) -> None:
    """Fast AT (Wong, Rice, Kolter 2020): one FGSM step from a random start, in train mode."""
    model, config, x, y = s.state.model, s.config, s.x, s.y
    model.train()
    alpha = config.fgsm_alpha or FGSM_ALPHA_FACTOR * config.eps
    noise = torch.empty(x.shape).uniform_(-config.eps, config.eps, generator=s.generator)
    delta = noise.to(x.device, x.dtype)
    if s.channels_last:
        delta = delta.contiguous(memory_format=torch.channels_last)
    delta.requires_grad_(True)
    with s.amp_ctx():
        adv_logits = model((x + delta).clamp(0.0, 1.0))
    (g_delta,) = torch.autograd.grad(F.cross_entropy(adv_logits.float(), y), delta)
    delta = (delta.detach() + alpha * g_delta.sign()).clamp_(-config.eps, config.eps)
    x_adv = (x + delta).clamp_(0.0, 1.0)
    with s.amp_ctx():
        logits = model(x_adv)
    loss = s.ce(logits, y)
    s.update(loss)
    s.tally(loss, logits, y)


def _trades_step(s: _Step) -> None:
    """TRADES (Zhang et al. 2019): CE on x plus β · KL(f(x) ‖ f(x_adv))."""
    model, config, x, y = s.state.model, s.config, s.x, s.y
    model.eval()
    with torch.no_grad(), s.amp_ctx():
        p_nat = F.softmax(model(x).float(), dim=1)
    x_adv = _pgd(
        model,
        x,
        y,
        eps=config.eps,
        alpha=config.pgd_alpha,
        steps=config.steps,
        generator=s.generator,
        amp_ctx=s.amp_ctx,
        target_probs=p_nat,
    )
    model.train()
    with s.amp_ctx():
        logits = model(x).float()
        logits_adv = model(x_adv).float()
    loss_nat = F.cross_entropy(logits, y)
    loss_rob = F.kl_div(
        F.log_softmax(logits_adv, dim=1), F.softmax(logits, dim=1), reduction="sum"
    ) / len(y)
    loss = loss_nat + config.trades_beta * loss_rob
    s.update(loss)
    s.tally(loss, logits, y)


def _free_at_step(s: _Step) -> None:
    """Free AT (Shafahi et al. 2019): each batch replayed m times, δ carried over."""
    model, config, state, x, y = s.state.model, s.config, s.state, s.x, s.y
    b = len(y)
    model.train()
    if state.free_delta is None:
        state.free_delta = torch.zeros(
            (config.batch_size, *x.shape[1:]), device=x.device, dtype=torch.float32
        )
    for _ in range(config.free_replays):
        delta = state.free_delta[:b].clone().requires_grad_(True)
        x_adv = (x + delta).clamp(0.0, 1.0)
        with s.amp_ctx():
            logits = model(x_adv)
        loss = s.ce(logits, y)
        s.update(loss)  # one backward: grads of the weights and of δ
        grad = delta.grad
        assert grad is not None
        grad = torch.nan_to_num(grad, nan=0.0)
        state.free_delta[:b] = (delta.detach() + config.eps * grad.sign()).clamp_(
            -config.eps, config.eps
        )
        s.tally(loss, logits, y)


#: One step function per training method (:data:`kwta.training.config.METHODS`).
METHOD_STEPS: dict[str, Callable[[_Step], None]] = {
    "natural": _natural_step,
    "pgd": _pgd_at_step,
    "fgsm": _fgsm_at_step,
    "trades": _trades_step,
    "free": _free_at_step,
}


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
    on_step: Callable[[int], None] | None = None,
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
        on_step: Called with ``i`` after the i-th minibatch (e.g. to adjust CPU threads).

    Returns:
        ``(mean loss, accuracy, examples)`` over the examples trained on.
    """
    model, opt, scaler = state.model, state.optimizer, state.scaler
    method = METHOD_STEPS[config.method]
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
            method(_Step(state, config, x, y, generator, channels_last, amp_ctx, ce, step, tally))
            bar.update(1)
            if on_step is not None:
                on_step(i)
            if progress and (bar.n % 20 == 0 or bar.n == n_batches):
                bar.set_postfix(
                    loss=f"{float(tot_loss) / max(tot_n, 1):.3f}",
                    acc=f"{int(tot_correct) / max(tot_n, 1):.3f}",
                )
    finally:
        bar.close()
    return float(tot_loss) / max(tot_n, 1), int(tot_correct) / max(tot_n, 1), tot_n
