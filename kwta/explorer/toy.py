"""A 1-D curve broken at its discontinuities, for plotting the Fig. 1 toy fit."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "jump_segments",
    "split_at_jumps",
]


def split_at_jumps(
    x: Tensor | Sequence[float], y: Tensor | Sequence[float], jumps: Tensor | Sequence[float]
) -> tuple[list[float | None], list[float | None]]:
    """A sampled curve with a gap (``None``) at every jump, for line plots.

    Without gaps a plotting library joins the two sides of a discontinuity with a
    steep segment, which looks continuous. Each gap is inserted between the two
    samples that straddle a jump location.

    Args:
        x: Sorted sample positions.
        y: Values at ``x``.
        jumps: Jump locations (any order).

    Returns:
        ``(xs, ys)`` lists with ``None`` separators.
    """
    xs = [float(v) for v in torch.as_tensor(x, dtype=torch.float64).reshape(-1)]
    ys = [float(v) for v in torch.as_tensor(y, dtype=torch.float64).reshape(-1)]
    if len(xs) != len(ys):
        raise ValueError(f"x and y differ in length: {len(xs)} vs {len(ys)}")
    js = sorted(float(v) for v in torch.as_tensor(jumps, dtype=torch.float64).reshape(-1))
    out_x: list[float | None] = []
    out_y: list[float | None] = []
    j = 0
    for i, (a, b) in enumerate(zip(xs, ys, strict=True)):
        if i > 0:
            gap = False
            while j < len(js) and js[j] < a:
                gap = gap or js[j] >= xs[i - 1]
                j += 1
            if gap:
                out_x.append(None)
                out_y.append(None)
        out_x.append(a)
        out_y.append(b)
    return out_x, out_y


def jump_segments(
    x: Tensor | Sequence[float],
    y: Tensor | Sequence[float],
    locations: Tensor | Sequence[float],
    sizes: Tensor | Sequence[float],
) -> tuple[list[float | None], list[float | None]]:
    """Vertical segments marking jumps of a sampled curve, ``None``-separated (one plot trace).

    Each segment goes from the curve's value at the last sample left of the jump
    to that value plus the jump size (``f(right) − f(left)``).

    Args:
        x: Sorted sample positions.
        y: Values at ``x``.
        locations: Jump locations.
        sizes: Signed jump sizes, one per location.
    """
    xs = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    ys = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    locs = torch.as_tensor(locations, dtype=torch.float64).reshape(-1)
    szs = torch.as_tensor(sizes, dtype=torch.float64).reshape(-1)
    if locs.numel() != szs.numel():
        raise ValueError(f"{locs.numel()} locations but {szs.numel()} sizes")
    out_x: list[float | None] = []
    out_y: list[float | None] = []
    for loc, size in zip(locs.tolist(), szs.tolist(), strict=True):
        i = max(0, int(torch.searchsorted(xs, torch.tensor(loc, dtype=torch.float64))) - 1)
        left = float(ys[i])
        out_x += [loc, loc, None]
        out_y += [left, left + size, None]
    return out_x, out_y
