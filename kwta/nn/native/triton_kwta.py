"""Exact k-WTA on CUDA: a Triton radix-select kernel (Sec. 2.1 of Xiao, Zhong, Zheng, ICLR 2020).

One program per sample (a row of ``N = C·H·W`` values, NCHW or channels-last):

1. every value becomes an order-preserving key (``-0.0`` ties with ``+0.0``, as torch
   compares; ``+NaN`` above ``+inf``, ``-NaN`` below ``-inf``): 32 bits for fp32, the value's
   own 16 bits for bf16 and fp16 (:func:`key_bits_of`);
2. radix select, :data:`RADIX_BITS` at a time from the top: a histogram of the next digit of
   the keys that share the prefix found so far picks the digit of the k-th largest key;
   after ``key bits / RADIX_BITS`` passes (4 for fp32, 2 for bf16 and fp16) the prefix *is*
   the k-th largest key ``T``, and the last histogram says how many values are tied with it;
3. one output pass in memory order writes ``y = x`` where ``key > T`` (and where ``key == T``
   when every tie fits), else 0, and the winner mask;
4. only when more values tie with ``T`` than may win (decided on the GPU, no host sync): a
   pass in flat ``C·H·W`` order keeps the first ties (a running rank), so the lowest flat
   indices win in either memory layout.

The backward pass is ``grad`` where the mask is set. Triton compiles the kernel the first
time it runs on a GPU (a C compiler builds its launcher); ``TRITON_INTERPRET=1`` runs the
same kernel on the CPU through Triton's interpreter, which is how the test suite checks
exactness on machines without a GPU. Without Triton, :func:`available` is ``False`` and the
PyTorch path serves.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "BLOCK",
    "RADIX_BITS",
    "KernelFailed",
    "available",
    "interpreting",
    "key_bits_of",
    "kwta_forward",
    "supports",
]

log = logging.getLogger(__name__)

#: Bits of the key decided per selection pass (a 2**RADIX_BITS-bin histogram; 4 passes for
#: fp32's 32-bit keys, 2 for bf16/fp16's 16-bit keys).
RADIX_BITS = 8

#: Largest block of a row one program handles at a time (the row is walked in blocks).
BLOCK = 4096

#: The kernel's Triton source (loaded by :func:`_build`, once per mode).
KERNEL_SOURCE = Path(__file__).with_name("kwta_triton_kernel.py")

_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_lock = threading.Lock()
_kernels: dict[bool, Callable[..., Any] | None] = {}
#: Why the kernel was given up (a compile or launch failure), once it was.
_failures: list[str] = []


class KernelFailed(RuntimeError):
    """The kernel failed to compile or launch; it is given up (:func:`available` is then
    ``False``) and the caller takes the PyTorch path."""


def key_bits_of(dtype: torch.dtype) -> int:
    """Bits of the kernel's order key: 16 for bf16 and fp16 (their own bits: two radix
    passes), 32 for fp32 (four)."""
    return 16 if dtype in (torch.bfloat16, torch.float16) else 32


def interpreting() -> bool:
    """Whether Triton runs kernels through its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def supports(x: Tensor) -> bool | None:
    """For this kernel: ``False`` (contiguous), ``True`` (channels-last 4-D) or ``None``.

    CUDA tensors of fp32/bf16/fp16; CPU tensors only under Triton's interpreter.
    """
    if x.dtype not in _DTYPES or x.dim() < 2 or x[0].numel() >= 2**31:
        return None
    if x.device.type != "cuda" and not (x.device.type == "cpu" and interpreting()):
        return None
    if x.is_contiguous():
        return False
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return True
    return None


def available() -> bool:
    """Whether the kernel can be built here (Triton importable; ``$KWTA_TRITON`` not ``0``)."""
    if os.environ.get("KWTA_TRITON", "1").strip().lower() in ("0", "false", "off", "no"):
        return False
    return _kernel() is not None


def _kernel() -> Callable[..., Any] | None:
    mode = interpreting()
    if mode in _kernels:
        return _kernels[mode]
    with _lock:
        if mode not in _kernels:
            _kernels[mode] = _build()
    return _kernels[mode]


def _build() -> Callable[..., Any] | None:
    """Load the kernel module anew for the current mode (``triton.jit`` reads
    ``TRITON_INTERPRET`` when it decorates), and return its launcher."""
    try:
        import triton

        name = f"{__name__}._kernel_{'interpreted' if interpreting() else 'compiled'}"
        spec = importlib.util.spec_from_file_location(name, KERNEL_SOURCE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as err:  # no Triton in this PyTorch build (CPU wheels, macOS, ...)
        log.info("Triton unavailable (%s); k-WTA on CUDA takes the PyTorch path", err)
        return None
    kwta_kernel = module.kwta_kernel
    bins_n = 1 << RADIX_BITS

    def launch(
        x: Tensor, k: int, channels_last: bool, block: int | None, num_warps: int | None
    ) -> tuple[Tensor, Tensor]:
        rows, n = x.shape[0], x[0].numel()
        y = torch.empty_like(x)  # keeps the memory layout
        mask = torch.empty_like(x, dtype=torch.bool)
        channels = x.shape[1] if x.dim() > 2 else 1
        hw = n // channels
        block = min(block or BLOCK, triton.next_power_of_2(n))
        key_bits = key_bits_of(x.dtype)
        kwta_kernel[(rows,)](
            x,
            y,
            mask,
            n,
            k,
            channels,
            hw,
            CHANNELS_LAST=channels_last,
            BLOCK_N=block,
            BITS=RADIX_BITS,
            BINS=bins_n,
            PASSES=key_bits // RADIX_BITS,
            KEY_BITS=key_bits,
            num_warps=num_warps or (8 if block >= 2048 else 4),
        )
        return y, mask

    return launch


def kwta_forward(
    x: Tensor,
    k: int,
    channels_last: bool,
    *,
    block: int | None = None,
    num_warps: int | None = None,
) -> tuple[Tensor, Tensor]:
    """``(y, mask)``: the k-WTA output and winner mask of ``x`` (exactly ``k`` per row).

    ``x`` must satisfy :func:`supports` (``channels_last`` is what it returned) and
    ``1 <= k < N``; the caller (:func:`kwta.nn.functional.kwta`) handles the rest.
    ``block`` and ``num_warps`` override the launch settings (for
    ``benchmarks/tune_triton.py``; the result does not depend on them).
    """
    kernel = _kernel()
    if kernel is None:
        raise RuntimeError("Triton is unavailable: the CUDA k-WTA kernel cannot run here")
    try:
        y, mask = kernel(x, k, channels_last, block, num_warps)
    except torch.cuda.OutOfMemoryError:
        raise  # the caller's to handle (the pages retry at a smaller batch)
    except Exception as err:  # a compile or launch failure: give the kernel up, once
        _give_up(err)
        raise KernelFailed(f"the Triton k-WTA kernel failed: {err}") from err
    return y, mask


def _give_up(err: BaseException) -> None:
    """Stop using the kernel (every later call takes the PyTorch path); warn the first time."""
    why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]
    with _lock:
        first = not _failures
        _failures.append(why)
        _kernels[interpreting()] = None
    if first:
        msg = (
            f"the Triton k-WTA kernel failed to compile or launch ({why}); k-WTA takes the "
            "PyTorch path from now on (identical results, slower)"
        )
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
