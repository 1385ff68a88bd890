"""Winner-take-all activations as plain functions.

Implements Eq. 1 of Xiao, Zhong, Zheng, "Enhancing Adversarial Defense by
k-Winners-Take-All" (ICLR 2020), Sec. 2.1, and the local winner-take-all (LWTA)
baseline of App. D.3. The modules in :mod:`kwta.nn.activations` are thin wrappers.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from kwta.nn import native
from kwta.nn.native import triton_kwta

__all__ = [
    "BACKENDS",
    "CL",
    "check_ratio",
    "k_from_ratio",
    "kwta",
    "kwta_mask",
    "kwta_reference",
    "lwta",
    "lwta_mask",
    "order_key",
]


#: Implementations of :func:`kwta`: ``"auto"`` picks the compiled CPU kernel on the CPU and
#: the Triton kernel on CUDA where available, else PyTorch; all give identical results.
BACKENDS: tuple[str, ...] = ("auto", "torch", "native", "triton")


CL = torch.channels_last


_NATIVE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

#: The integer type of each float type's order key (same width: a view, no copy of bits).
_KEY_DTYPES = {
    torch.float32: torch.int32,
    torch.float64: torch.int64,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def order_key(x: Tensor) -> Tensor:
    """Integers ordered as k-WTA ranks ``x``, in ``x``'s layout (floats; others as they are).

    The same order as the compiled and Triton kernels' keys: ``-0.0`` ties with ``+0.0``
    (as torch compares), ``+NaN`` ranks above ``+inf`` and ``-NaN`` below ``-inf``, so a
    NaN input selects the same ``k`` winners on every backend (exactly ``k``; a comparison
    of floats would keep fewer). The float's bits read as a signed integer, with the
    magnitude bits of negative values flipped.
    """
    kind = _KEY_DTYPES.get(x.dtype)
    if kind is None:
        return x
    bits = torch.where(x == 0, torch.zeros_like(x), x).view(kind)
    return torch.where(bits < 0, bits ^ torch.iinfo(kind).max, bits)


def k_from_ratio(ratio: float, n: int) -> int:
    """Number of winners ``k = max(1, floor(ratio * n))`` (Sec. 2.1).

    A tiny tolerance keeps ``floor`` from rounding products such as
    ``0.29 * 100 = 28.999999999999996`` down by one.

    Args:
        ratio: Sparsity ratio γ in (0, 1].
        n: Number of units the winners are drawn from.

    Raises:
        ValueError: If ``ratio`` is outside (0, 1].
    """
    check_ratio(ratio)
    return max(1, min(n, math.floor(ratio * n + 1e-9)))


def check_ratio(ratio: float) -> float:
    """Return ``ratio`` if it is a valid sparsity ratio, else raise ``ValueError``."""
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool):
        raise ValueError(f"sparsity ratio must be a number in (0, 1], got {ratio!r}")
    if not 0.0 < float(ratio) <= 1.0 or math.isnan(ratio):
        raise ValueError(f"sparsity ratio must be in (0, 1], got {ratio!r}")
    return float(ratio)


def _threshold(x: Tensor, k: int) -> Tensor:
    """The k-th largest value of each sample, shaped ``(B, 1, …)`` for broadcasting.

    Selected by an unsorted top-k over the sample's values in *memory* order
    (the value does not depend on the order), so a channels-last tensor is
    never copied to NCHW. When k is past the middle, the smaller side is
    selected instead.
    """
    b = x.shape[0]
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=CL):
        flat = x.permute(0, 2, 3, 1).reshape(b, -1)  # a view: memory order of channels-last
    else:
        flat = x.reshape(b, -1)
    n = flat.shape[1]
    if k <= n // 2:
        t = flat.topk(k, dim=1, sorted=False).values.amin(dim=1)
    else:  # the k-th largest is the (n-k+1)-th smallest: select the smaller side
        t = flat.topk(n - k + 1, dim=1, largest=False, sorted=False).values.amax(dim=1)
    return t.view(b, *([1] * (x.dim() - 1)))


def _mask_torch(x: Tensor, k: int) -> Tensor:
    """Exactly ``k`` winners per sample of ``x`` (``(B, N)`` or ``(B, C, *spatial)``), in
    ``x``'s own memory layout, with ties at the threshold kept in flat-index order (Sec. 2.1).

    The tie rule works per channel — ties in earlier channels first, then in
    spatial order inside the channel — which is flat ``C·H·W`` order in any
    memory layout. On the CPU it runs only when a sample has surplus ties; on
    CUDA it always runs, branch-free, so no layer waits for the host.
    """
    n = x[0].numel()
    if k >= n:
        return torch.ones_like(x, dtype=torch.bool)
    with torch.no_grad():
        x = order_key(x)  # NaN and ±0 ranked as the kernels rank them
        t = _threshold(x, k)
        mask = x >= t
        dims = tuple(range(1, x.dim()))
        if x.device.type == "cpu":
            surplus = mask.sum(dim=dims) > k
            if not bool(surplus.any()):
                return mask
        v = x if x.dim() > 2 else x.unsqueeze(1)  # (B, C, S…): channels, then space
        tv = t if x.dim() > 2 else t.unsqueeze(1)
        greater = v > tv
        tied = v == tv
        need = k - greater.sum(dim=tuple(range(1, v.dim())))  # ties to keep per sample
        per_channel = tied.flatten(2).sum(dim=2)  # (B, C)
        before = per_channel.cumsum(dim=1) - per_channel  # ties in earlier channels
        quota = (need[:, None] - before).clamp_(min=0)  # ties to keep in each channel
        rank = tied.flatten(2).cumsum(dim=2)  # 1-based rank of each tie inside its channel
        keep = tied.flatten(2) & (rank <= quota[:, :, None])
        out = greater | keep.view_as(v)
        return out if x.dim() > 2 else out.squeeze(1)


def _native_layout(x: Tensor) -> bool | None:
    """For the compiled kernel: ``False`` (contiguous), ``True`` (channels-last) or ``None``."""
    if x.device.type != "cpu" or x.dtype not in _NATIVE_DTYPES or x.dim() < 2:
        return None
    if x.is_contiguous():
        return False
    if x.dim() == 4 and x.is_contiguous(memory_format=CL):
        return True
    return None


class _NativeKWTA(torch.autograd.Function):
    """The compiled CPU kernel as an autograd function (gradient to the winners only)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, k: int, channels_last: bool) -> Tensor:
        y, mask = _kernel().forward(x, k, channels_last)
        ctx.save_for_backward(mask)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (mask,) = ctx.saved_tensors
        return _kernel().backward(grad, mask), None, None


class _TritonKWTA(torch.autograd.Function):
    """The Triton (CUDA) kernel as an autograd function (gradient to the winners only)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, k: int, channels_last: bool) -> Tensor:
        y, mask = triton_kwta.kwta_forward(x, k, channels_last)
        ctx.save_for_backward(mask)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (mask,) = ctx.saved_tensors
        return torch.where(mask, grad, grad.new_zeros(())), None, None


def _kernel() -> Any:
    ext = native.cpu_kernel()
    assert ext is not None
    return ext


def _pick(x: Tensor, backend: str) -> tuple[str, bool] | None:
    """The kernel for ``x`` and its layout flag (channels-last), or ``None`` for PyTorch.

    ``"auto"``: the compiled kernel on the CPU, the Triton kernel on CUDA, where each is
    available for ``x``'s dtype and layout. ``"native"``/``"triton"``: that kernel or an
    error. ``"triton"`` runs on CPU tensors only under ``TRITON_INTERPRET=1`` (the tests).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return None
    if backend in ("auto", "native") and x.device.type == "cpu":
        layout = _native_layout(x)
        if layout is not None and native.cpu_kernel() is not None:
            return "native", layout
    if backend == "native":
        raise RuntimeError(
            "the compiled k-WTA kernel is unavailable for this input or machine "
            f"(device {x.device}, dtype {x.dtype}, KWTA_NATIVE={native.native_enabled()})"
        )
    if backend == "triton" or x.device.type == "cuda":
        cl = triton_kwta.supports(x)
        if cl is not None and triton_kwta.available():
            return "triton", cl
        if backend == "triton":
            raise RuntimeError(
                "the Triton k-WTA kernel is unavailable for this input or machine "
                f"(device {x.device}, dtype {x.dtype}, layout not contiguous or channels-last, "
                "or no Triton; on the CPU it needs TRITON_INTERPRET=1)"
            )
    return None


def kwta_mask(
    x: Tensor, ratio: float, *, per_channel: bool = False, backend: str = "auto"
) -> Tensor:
    """Boolean mask of the k-WTA winners of ``x`` (the activation pattern, Sec. 3, Eq. 2).

    Args:
        x: Input of shape ``(B, N)`` or ``(B, C, *spatial)``, in any memory layout.
        ratio: Sparsity ratio γ in (0, 1]; ``k = max(1, floor(γ·N))``.
        per_channel: If ``True``, select winners inside each channel's spatial
            map (``N = H·W``) instead of over all non-batch dims (``N = C·H·W``,
            the paper's choice).
        backend: ``"auto"`` (the compiled CPU kernel on the CPU, the Triton kernel on
            CUDA, where available; else PyTorch), ``"torch"``, ``"native"`` or
            ``"triton"`` (raise if unavailable). Results are identical, NaN included
            (:func:`order_key`). A Triton kernel that fails to compile or launch is
            given up with one warning, and the PyTorch path serves.

    Returns:
        A ``bool`` tensor shaped like ``x`` (same memory layout) with exactly
        ``k`` ``True`` entries per sample (per channel in per-channel mode);
        ties at the k-th value go to the lower flat index. An empty batch gives an
        empty mask.
    """
    if x.dim() < 2:
        raise ValueError(f"k-WTA needs a batch dimension; got shape {tuple(x.shape)}")
    if x.shape[0] == 0:  # an empty batch: no winners to pick, on every backend
        return torch.zeros_like(x, dtype=torch.bool)
    if per_channel:  # one row per (sample, channel): any backend runs on the rows
        return kwta_mask(_channel_rows(x), ratio, backend=backend).view(x.shape)
    n = x[0].numel()
    k = k_from_ratio(ratio, n)
    picked = _pick(x, backend)
    if picked is not None and k < n:
        kernel, layout = picked
        if kernel == "native":
            return _kernel().forward(x.detach(), k, layout)[1]
        try:
            return triton_kwta.kwta_forward(x.detach(), k, layout)[1]
        except triton_kwta.KernelFailed:
            pass  # warned once; the PyTorch path from now on
    return _mask_torch(x, k)


def _channel_rows(x: Tensor) -> Tensor:
    """``(B, C, *spatial)`` as ``(B·C, H·W…)`` rows, for per-channel k-WTA."""
    if x.dim() < 3:
        raise ValueError("per-channel k-WTA needs an input of shape (B, C, H, W)")
    return x.reshape(x.shape[0] * x.shape[1], -1)


def kwta(x: Tensor, ratio: float, *, per_channel: bool = False, backend: str = "auto") -> Tensor:
    """k-Winners-Take-All activation, Eq. 1 (Sec. 2.1).

    Keeps the ``k = max(1, floor(ratio·N))`` largest values of every sample and
    sets the rest to zero. Exactly ``k`` values survive: ties at the k-th value
    go to the lower flat index. Winners keep their sign (k-WTA is not ReLU).
    The gradient flows to the winners only. The output keeps ``x``'s memory
    layout (channels-last stays channels-last).

    Args:
        x: Input of shape ``(B, N)`` or ``(B, C, *spatial)``.
        ratio: Sparsity ratio γ in (0, 1].
        per_channel: Winners inside each channel instead of over ``C·H·W``.
        backend: ``"auto"``, ``"torch"``, ``"native"`` or ``"triton"`` (see :func:`kwta_mask`).

    Returns:
        Tensor shaped like ``x``.
    """
    if per_channel and x.dim() >= 2 and x.shape[0] > 0:  # any backend, on the channels' rows
        return kwta(_channel_rows(x), ratio, backend=backend).view(x.shape)
    if x.dim() >= 2 and x.shape[0] > 0:
        picked = _pick(x, backend)
        n = x[0].numel()
        k = k_from_ratio(ratio, n)
        if picked is not None and (picked[0] == "native" or k < n):
            kernel, layout = picked
            fn = _NativeKWTA if kernel == "native" else _TritonKWTA
            try:
                out: Tensor = fn.apply(x, k, layout)
                return out
            except triton_kwta.KernelFailed:
                pass  # warned once; the PyTorch path from now on
    mask = kwta_mask(x, ratio, per_channel=per_channel, backend="torch")
    return torch.where(mask, x, x.new_zeros(()))


def kwta_reference(x: Tensor, ratio: float) -> Tensor:
    """The authors' formulation, kept as the baseline for benchmarks only.

    Sorted ``topk``, the last value as threshold, ``repeat`` to full size,
    compare ``>=`` and multiply. It keeps *every* value tied with the k-th, so
    more than ``k`` units can survive. Do not use it in models.
    """
    flat = x.reshape(x.shape[0], -1)
    k = k_from_ratio(ratio, flat.shape[1])
    topval = flat.topk(k, dim=1)[0][:, -1]
    topval = topval.repeat(flat.shape[1], 1).permute(1, 0).reshape(x.shape)
    comp = (x >= topval).to(x)
    return comp * x


def lwta_mask(x: Tensor, group_size: int) -> Tensor:
    """Boolean mask of the local winners: one per group of ``group_size`` channels.

    Groups are consecutive channels at each spatial position (consecutive
    features for ``(B, N)`` inputs); a last, shorter group takes the remainder.
    Ties go to the lower channel index.
    """
    if group_size < 1:
        raise ValueError(f"LWTA group size must be >= 1, got {group_size}")
    if x.dim() < 2:
        raise ValueError(f"LWTA needs a batch dimension; got shape {tuple(x.shape)}")
    c = x.shape[1]
    groups = -(-c // group_size)
    pad = groups * group_size - c
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return _lwta_mask_channels_last(x, group_size, groups, pad)
    with torch.no_grad():
        xp = x
        if pad:
            filler = torch.full(
                (x.shape[0], pad, *x.shape[2:]), float("-inf"), dtype=x.dtype, device=x.device
            )
            xp = torch.cat([x, filler], dim=1)
        g = xp.reshape(x.shape[0], groups, group_size, *x.shape[2:])
        win = g.argmax(dim=2, keepdim=True)
        mask = torch.zeros_like(g, dtype=torch.bool).scatter_(2, win, True)
        mask = mask.reshape(xp.shape)[:, :c]
    return mask


def _lwta_mask_channels_last(x: Tensor, group_size: int, groups: int, pad: int) -> Tensor:
    """:func:`lwta_mask` of a channels-last ``(B, C, H, W)`` tensor, without a layout copy.

    The channels are the innermost dimension in memory, so the groups are contiguous
    runs: 3-5× faster than reshaping the NCHW view (the fast path trains channels-last).
    Same winners, same tie rule (``argmax`` takes the first maximum).
    """
    with torch.no_grad():
        xl = x.permute(0, 2, 3, 1)  # (B, H, W, C), contiguous
        if pad:
            xl = torch.nn.functional.pad(xl, (0, pad), value=float("-inf"))
        g = xl.reshape(*xl.shape[:3], groups, group_size)
        win = g.argmax(dim=-1, keepdim=True)
        mask = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, win, True)
        return mask.reshape(*xl.shape[:3], groups * group_size)[..., : x.shape[1]].permute(
            0, 3, 1, 2
        )


def lwta(x: Tensor, group_size: int) -> Tensor:
    """Local winner-take-all (Srivastava et al. 2013; the paper's App. D.3 baseline).

    In each group of ``group_size`` consecutive channels, the largest value is
    kept and the others are zeroed. ``group_size = 1/γ`` matches k-WTA-γ's
    sparsity, as in the paper's Table 2.
    """
    return x * lwta_mask(x, group_size)
