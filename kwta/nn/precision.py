"""The fast path: reduced-precision autocast and the channels-last layout, where they pay.

Training and clean evaluation run under ``torch.autocast`` in bf16 (CUDA, and
CPUs whose oneDNN has native bf16 kernels: AVX-512-BF16 or AMX) or fp16 (CUDA
without bf16), on channels-last tensors. On a CPU without native bf16, oneDNN
emulates it and a step gets *slower* (measured on this project's 2-core AVX2
CPU: ReLU ResNet-18 width 16, batch 128, one SGD step 0.39 s fp32 channels-last
against 4.4 s bf16), so ``"auto"`` keeps fp32 there and only switches the
layout to channels-last (0.51 s → 0.39 s).

Precision names: ``"auto"``, ``"bf16"``, ``"fp16"`` and ``"fp32"`` (``"off"`` is
accepted as a synonym of ``"fp32"``; older cards and checkpoints say ``"off"``).

A *view* (:class:`FastView`, :func:`fast_view`) runs a model on channels-last inputs under
an autocast without touching it: attacks, grids and probes use one on a model that may be
cached and shared. ``with memory_layout("nchw")`` turns the layout switch off (the
benchmarks' baseline, and tests that compare the two).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = [
    "MIN_CPU_CHANNELS_LAST_1X1",
    "PRECISIONS",
    "FastView",
    "Layout",
    "autocast",
    "channels_last_safe",
    "cpu_bf16_supported",
    "fast_view",
    "memory_layout",
    "model_is_channels_last",
    "resolve_precision",
    "to_channels_last",
]


#: Accepted precision names (``"off"`` = ``"fp32"``).
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp16", "fp32", "off")


@functools.cache
def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN AVX-512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The autocast dtype actually used: ``"bf16"``, ``"fp16"`` or ``"off"`` (fp32).

    ``"auto"``: bf16 on CUDA when supported, else fp16; bf16 on a CPU with native
    bf16, else fp32. An explicit ``"bf16"`` is honoured on any CPU (slow where
    emulated); ``"fp16"`` is CUDA-only and falls back to fp32 elsewhere.

    Raises:
        ValueError: Unknown name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision in ("fp32", "off"):
        return "off"
    if device.type == "cuda":
        if precision == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return precision
    if precision == "auto":
        return "bf16" if device.type == "cpu" and cpu_bf16_supported() else "off"
    if precision == "bf16" and device.type == "cpu":
        return "bf16"
    return "off"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for a *resolved* precision (see :func:`resolve_precision`)."""
    if precision == "off" or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


#: oneDNN's AVX2 1×1 convolution weight-gradient kernel deadlocks (2 threads) or
#: corrupts the heap (1 thread) in channels-last with fewer input channels than
#: this (measured with torch 2.14.1 on this project's AVX2 CPU: a width-4
#: ResNet-18, whose 4 → 8 shortcut convolution triggers it; width 8 is fine).
MIN_CPU_CHANNELS_LAST_1X1 = 8


def channels_last_safe(model: nn.Module, device: torch.device) -> bool:
    """Whether training ``model`` in channels-last on ``device`` avoids the oneDNN bug above."""
    if device.type != "cpu":
        return True
    return all(
        m.in_channels >= MIN_CPU_CHANNELS_LAST_1X1
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
    )


def model_is_channels_last(model: nn.Module) -> bool:
    """Whether the first 4-D parameter of ``model`` is stored channels-last."""
    for p in model.parameters():
        if p.dim() == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` in the channels-last layout (in place), as the fast path trains it."""
    return model.to(memory_format=torch.channels_last)


#: ``"auto"``: channels-last inputs where :func:`channels_last_safe` allows; ``"nchw"``: the
#: contiguous layout a model is stored in (how every attack and grid ran before the fast path).
Layout = Literal["auto", "nchw"]

_LAYOUT: ContextVar[Layout] = ContextVar("kwta_memory_layout", default="auto")


@contextlib.contextmanager
def memory_layout(layout: Layout) -> Iterator[None]:
    """The layout of every :func:`fast_view` made inside (this thread or task only)."""
    if layout not in ("auto", "nchw"):
        raise ValueError(f"layout must be 'auto' or 'nchw', got {layout!r}")
    token = _LAYOUT.set(layout)
    try:
        yield
    finally:
        _LAYOUT.reset(token)


class FastView(nn.Module):
    """``model`` run on channels-last inputs under an autocast, returning fp32 outputs.

    A view, not a copy: it holds the caller's model and changes nothing about it (weights,
    layout, mode), so a model cached and shared across sessions stays as it was.
    """

    def __init__(self, model: nn.Module, *, channels_last: bool, precision: str) -> None:
        super().__init__()
        self.model = model
        self.channels_last = channels_last
        self.precision = precision  # resolved: "off", "bf16" or "fp16"

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(x.device, self.precision):
            out = self.model(x)
        return out.float()


def fast_view(model: nn.Module, x: Tensor, precision: str = "off") -> FastView:
    """A :class:`FastView` of ``model`` for inputs like ``x`` under a *resolved* precision.

    Channels-last when ``x`` is a batch of images, the layout is ``"auto"`` and
    :func:`channels_last_safe` allows it.
    """
    layout = _LAYOUT.get() == "auto" and x.dim() == 4 and channels_last_safe(model, x.device)
    return FastView(model, channels_last=layout, precision=precision)
