"""The attacker's loss landscape around one image (Sec. 4.3, Fig. 5; App. D.5, Fig. 7).

The loss on a 2-D grid spanned by the adversarial direction and a random
Rademacher direction: smooth for ReLU, a field of jumps for k-WTA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from kwta.analysis._common import (
    MAX_GRID,
    Callback,
    LossName,
    as_image_batch,
    check_batch_size,
    check_loss,
    device_of,
    eval_view,
    labels_like,
    per_sample_loss,
    rademacher,
    to_plain,
)
from kwta.nn.precision import fast_view

__all__ = [
    "Landscape",
    "loss_landscape",
    "loss_sign_gradient",
    "plane_losses",
    "symmetric_steps",
]


@dataclass(frozen=True, eq=False)
class Landscape:
    """Attack loss on a 2-D slice of input space (Sec. 4.3, Fig. 5).

    Attributes:
        e1: ``(G,)`` steps along the gradient-sign direction ``g1``.
        e2: ``(G,)`` steps along the random sign direction ``g2``.
        loss: ``(G, G)`` loss at ``clamp(x + e1[i]·g1 + e2[j]·g2, 0, 1)``, indexed ``[i, j]``.
        g1: ``(C, H, W)`` sign of the input gradient of the loss at ``x``.
        g2: ``(C, H, W)`` random ±1 direction drawn from ``seed``.
        clean_loss: Loss at ``x`` itself.
        label: The label the loss is taken against.
        loss_fn: ``"ce"`` or ``"margin"``.
        seed: Seed of ``g2``.
    """

    e1: Tensor
    e2: Tensor
    loss: Tensor
    g1: Tensor
    g2: Tensor
    clean_loss: float
    label: int
    loss_fn: str
    seed: int

    def roughness(self, dim: int = 0) -> float:
        """Mean absolute second difference of the loss along ``e1`` (``dim=0``) or ``e2``
        (``dim=1``), divided by the loss range; 0 for a flat landscape.

        A smooth surface sampled finely has small second differences; jumps and kinks
        (k-WTA, Fig. 5a) make them comparable to the range.
        """
        if dim not in (0, 1):
            raise ValueError(f"dim must be 0 (e1) or 1 (e2), got {dim}")
        spread = float(self.loss.max() - self.loss.min())
        if spread == 0.0 or self.loss.shape[dim] < 3:
            return 0.0
        return float(self.loss.diff(n=2, dim=dim).abs().mean()) / spread

    def to_dict(self, *, directions: bool = True) -> dict[str, Any]:
        """Plain lists and numbers; ``directions=False`` leaves out ``g1``/``g2``."""
        out: dict[str, Any] = {
            "e1": to_plain(self.e1),
            "e2": to_plain(self.e2),
            "loss": to_plain(self.loss),
            "clean_loss": self.clean_loss,
            "label": self.label,
            "loss_fn": self.loss_fn,
            "seed": self.seed,
        }
        if directions:
            out["g1"] = to_plain(self.g1)
            out["g2"] = to_plain(self.g2)
        return out


def symmetric_steps(span: float, grid: int) -> Tensor:
    """``grid`` points from ``-span`` to ``span``; the middle is exactly 0 for odd ``grid``."""
    ticks = torch.arange(grid, dtype=torch.float64) * 2 - (grid - 1)
    return (ticks * (span / (grid - 1))).float()


def loss_sign_gradient(
    net: nn.Module, x1: Tensor, y1: Tensor, loss: LossName
) -> tuple[Tensor, float]:
    """``(sign(∇ₓ loss(x1)), loss(x1))`` for one image ``(1, C, H, W)``: the direction of the
    first step of PGD without a random start, and the clean loss (gradients on even under an
    outer ``no_grad``)."""
    with torch.enable_grad():
        xg = x1.clone().requires_grad_(True)
        clean = per_sample_loss(net(xg), y1, loss).sum()
        (grad,) = torch.autograd.grad(clean, xg)
    return grad.sign()[0].detach(), float(clean.detach())


def plane_losses(
    net: nn.Module,
    x1: Tensor,
    y1: Tensor,
    steps: Tensor,
    d1: Tensor,
    d2: Tensor,
    *,
    loss: LossName,
    batch_size: int,
    callback: Callback | None = None,
) -> Tensor:
    """``(G, G)`` loss at ``clamp(x1 + steps[i]·d1 + steps[j]·d2, 0, 1)``, in batches under
    ``no_grad`` on ``x1``'s device (``callback(done, total)`` after each batch)."""
    grid = len(steps)
    e = steps.to(x1.device, x1.dtype)
    total = grid * grid
    out = torch.empty(total, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, total, batch_size):
            idx = torch.arange(start, min(start + batch_size, total), device=x1.device)
            c1 = e[idx // grid].view(-1, *([1] * d1.dim()))
            c2 = e[idx % grid].view(-1, *([1] * d2.dim()))
            pts = (x1 + c1 * d1 + c2 * d2).clamp_(0.0, 1.0)
            batch_loss = per_sample_loss(net(pts), y1.expand(len(idx)), loss)
            out[start : start + len(idx)] = batch_loss.float().cpu()
            if callback is not None:
                callback(start + len(idx), total)
    return out.view(grid, grid)


def loss_landscape(
    model: nn.Module,
    x: Tensor,
    y: int | Tensor,
    *,
    grid: int = 50,
    span: float = 0.04,
    seed: int = 0,
    batch_size: int = 500,
    loss: LossName = "ce",
    callback: Callback | None = None,
) -> Landscape:
    """The attacker's loss landscape around one image (Sec. 4.3, Fig. 5; App. D.5, Fig. 7).

    Following the paper (after Tramèr et al., 2017), the loss is evaluated at
    ``x' = clamp(x + e1·g1 + e2·g2, 0, 1)`` for ``e1, e2`` in ``linspace(-span, span,
    grid)``, where ``g1 = sign(∇ₓ loss(x))`` and ``g2`` is a random Rademacher (±1)
    direction. The paper uses ``grid=50``, ``span=0.04``. The points are evaluated
    in batches under ``no_grad`` on the model's device.

    Args:
        model: Classifier taking images in [0, 1]; not modified.
        x: One image, ``(C, H, W)`` or ``(1, C, H, W)``, in [0, 1].
        y: Its label (int or one-element tensor).
        grid: Points per axis, 2 to :data:`MAX_GRID`. Odd grids contain ``x`` itself
            at the centre.
        span: Half-width of the sweep in pixel units (> 0).
        seed: Seed of the random direction ``g2``.
        batch_size: Images per forward pass.
        loss: ``"ce"`` (cross entropy) or ``"margin"`` (``max_{j≠y} z_j − z_y``).
        callback: Called as ``callback(done, total)`` with the number of grid points done.

    Returns:
        A :class:`Landscape`.

    Raises:
        ValueError: Bad ``grid``, ``span``, ``batch_size``, ``loss`` or input shape.
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or not 2 <= grid <= MAX_GRID:
        raise ValueError(f"grid must be an int from 2 to {MAX_GRID}, got {grid!r}")
    if not isinstance(span, (int, float)) or not math.isfinite(span) or span <= 0:
        raise ValueError(f"span must be a finite number > 0, got {span!r}")
    check_batch_size(batch_size)
    check_loss(loss)
    net = eval_view(model)
    x1 = as_image_batch(x)
    device = device_of(net, x1.device)
    x1 = x1.detach().to(device)
    y1 = labels_like(y, 1, device)
    net = fast_view(net, x1)  # channels-last fp32: the same surface, faster

    g1, clean_loss = loss_sign_gradient(net, x1, y1, loss)
    g2 = rademacher(x1.shape[1:], torch.Generator().manual_seed(seed)).to(device, x1.dtype)

    steps = symmetric_steps(float(span), grid)
    grid_loss = plane_losses(
        net, x1, y1, steps, g1, g2, loss=loss, batch_size=batch_size, callback=callback
    )
    return Landscape(
        e1=steps.clone(),
        e2=steps.clone(),
        loss=grid_loss,
        g1=g1.cpu(),
        g2=g2.cpu(),
        clean_loss=clean_loss,
        label=int(y1.item()),
        loss_fn=loss,
        seed=seed,
    )
