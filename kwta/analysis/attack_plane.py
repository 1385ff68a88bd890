"""Where PGD goes: the loss on the plane that holds the attack's walk (beyond Fig. 5).

The paper's landscape (:mod:`kwta.analysis.landscape`, Sec. 4.3) cuts the loss along the
gradient's sign at the clean image and a random direction, which the walk leaves after its
first steps. Here the plane goes through the clean image and the walk's end point: it is
spanned by the final perturbation ``δ_T`` and a second direction (the gradient's sign at
the clean image, or a seeded random ±1 direction), orthogonalised against it. Every step's
``δ_t`` is projected onto the plane; the loss at each real step beside the loss at its
projection says how far the walk leaves the plane. On a ReLU network the surface is smooth
and the walk climbs it; on a k-WTA network it is shattered (Sec. 3) and the walk stalls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

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
from kwta.analysis.landscape import loss_sign_gradient, plane_losses, symmetric_steps
from kwta.nn.precision import fast_view

__all__ = [
    "SECOND_DIRECTIONS",
    "AttackPlane",
    "attack_plane",
]

#: The plane's second direction: the sign of the loss gradient at the clean image (the
#: first PGD step's direction without a random start) or a seeded random ±1 direction.
SECOND_DIRECTIONS = ("gradient", "random")
SecondDirection = Literal["gradient", "random"]

#: The grid reaches this much beyond the farthest of the ε-box and the projected path.
MARGIN = 1.2
#: Below this share of its ℓ2 norm left after orthogonalisation, the gradient direction is
#: taken as parallel to ``δ_T`` and a random direction is used instead.
PARALLEL_TOL = 1e-3


@dataclass(frozen=True, eq=False)
class AttackPlane:
    """The loss on the plane through ``x`` spanned by the attack's end point and a second
    direction, with the attack's path projected onto it.

    Coordinates are in pixel units: ``u`` and ``v`` are orthogonal and scaled to
    ``‖u‖∞ = ‖v‖∞ = 1``, so the end point lies at ``(‖δ_T‖∞, 0)`` and the ε-box reaches
    ``±ε`` along both axes.

    Attributes:
        a: ``(G,)`` grid coordinates along ``u``.
        b: ``(G,)`` grid coordinates along ``v``.
        loss: ``(G, G)`` loss at ``clamp(x + a[i]·u + b[j]·v, 0, 1)``, indexed ``[i, j]``.
        u: ``(C, H, W)`` ``δ_T / ‖δ_T‖∞``.
        v: ``(C, H, W)`` the second direction minus its component along ``u``, ``‖v‖∞ = 1``.
        path: ``(T + 1, 2)`` each step's ``δ_t`` projected onto the plane (row 0: the origin).
        path_loss: ``(T + 1,)`` loss at the real iterates ``x + δ_t``.
        projected_loss: ``(T + 1,)`` loss at their projections (clamped to [0, 1]).
        off_plane: ``(T + 1,)`` ``‖δ_t − projection‖∞``: how far each step leaves the plane.
        box: ``(K, 2)`` the ε-box ``{a·u + b·v : ‖a·u + b·v‖∞ ≤ ε}`` as a closed polygon.
        eps: The ℓ∞ radius of the attack.
        second: ``"gradient"`` or ``"random"``: the second direction actually used.
        clean_loss: Loss at ``x``.
        label: The label the loss is taken against.
        loss_fn: ``"ce"`` or ``"margin"``.
        seed: Seed of the random direction.
    """

    a: Tensor
    b: Tensor
    loss: Tensor
    u: Tensor
    v: Tensor
    path: Tensor
    path_loss: Tensor
    projected_loss: Tensor
    off_plane: Tensor
    box: Tensor
    eps: float
    second: str
    clean_loss: float
    label: int
    loss_fn: str
    seed: int

    @property
    def steps(self) -> int:
        """Number of attack steps on the path."""
        return int(self.path.shape[0]) - 1

    def to_dict(self, *, directions: bool = False) -> dict[str, Any]:
        """JSON-able dict (the directions ``u``, ``v`` only when asked: 3 072 numbers each)."""
        keys = [
            "a", "b", "loss", "path", "path_loss", "projected_loss", "off_plane", "box",
            "eps", "second", "clean_loss", "label", "loss_fn", "seed",
        ]  # fmt: skip
        if directions:
            keys += ["u", "v"]
        return {k: to_plain(getattr(self, k)) for k in keys}


def _box_polygon(u: Tensor, v: Tensor, eps: float, points: int = 181) -> Tensor:
    """The ε-box's boundary in plane coordinates: along each angle θ the largest r with
    ``‖r·(cos θ·u + sin θ·v)‖∞ ≤ ε``."""
    theta = torch.linspace(0, 2 * math.pi, points, dtype=torch.float64)
    uf, vf = u.flatten().double(), v.flatten().double()
    reach = (theta.cos()[:, None] * uf + theta.sin()[:, None] * vf).abs().amax(dim=1)
    r = eps / reach
    return torch.stack([r * theta.cos(), r * theta.sin()], dim=1).float()


def attack_plane(
    model: nn.Module,
    x: Tensor,
    y: int | Tensor,
    path: Tensor,
    *,
    eps: float,
    second: SecondDirection = "gradient",
    grid: int = 41,
    seed: int = 0,
    span: float | None = None,
    loss: LossName = "ce",
    batch_size: int = 500,
    callback: Callback | None = None,
) -> AttackPlane:
    """The loss on the plane that holds an attack's walk, and the walk drawn on it.

    The plane goes through ``x``; ``u = δ_T / ‖δ_T‖∞`` (the final perturbation) and ``v``
    (``second`` with its component along ``u`` removed, scaled to ``‖v‖∞ = 1``) span it.
    The loss is evaluated at ``clamp(x + a·u + b·v, 0, 1)`` on a ``grid × grid`` grid from
    ``-span`` to ``span`` along both axes (odd grids hold ``x`` itself at the centre), in
    batches under ``no_grad`` — the cost of one :func:`kwta.analysis.loss_landscape`.
    Each ``δ_t`` is projected orthogonally onto the plane.

    Args:
        model: Classifier on pixels in [0, 1]; not modified.
        x: One image, ``(C, H, W)`` or ``(1, C, H, W)``, in [0, 1].
        y: Its label.
        path: ``(T + 1, C, H, W)`` the perturbations ``δ_t = x_t − x`` of the walk, row 0
            the clean image (zeros), e.g. :attr:`kwta.explorer.runs.AttackRun.path`.
        eps: The attack's ℓ∞ radius (> 0), for the ε-box and the default span.
        second: ``"gradient"`` (sign of ``∇ₓ loss`` at ``x``) or ``"random"`` (±1 from
            ``seed``). A gradient direction parallel to ``δ_T`` is replaced by the random
            one; :attr:`AttackPlane.second` says which was used.
        grid: Points per axis, 3 to :data:`~kwta.analysis._common.MAX_GRID`.
        seed: Seed of the random direction.
        span: Half-width of the grid in pixel units (default: 1.2 × the farthest of ``ε``
            and the projected path's coordinates).
        loss: ``"ce"`` or ``"margin"``.
        batch_size: Images per forward pass.
        callback: ``callback(done, total)`` with the grid points done.

    Returns:
        An :class:`AttackPlane` of CPU tensors.

    Raises:
        ValueError: Bad shapes, a path that never leaves ``x``, a bad ``grid``, ``span``,
            ``eps``, ``second``, ``loss`` or ``batch_size``.
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or not 3 <= grid <= MAX_GRID:
        raise ValueError(f"grid must be an int from 3 to {MAX_GRID}, got {grid!r}")
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    if span is not None and (not math.isfinite(span) or span <= 0):
        raise ValueError(f"span must be a finite number > 0, got {span!r}")
    if second not in SECOND_DIRECTIONS:
        raise ValueError(f"second must be one of {SECOND_DIRECTIONS}, got {second!r}")
    check_batch_size(batch_size)
    check_loss(loss)
    net = eval_view(model)
    x1 = as_image_batch(x)
    device = device_of(net, x1.device)
    x1 = x1.detach().to(device, torch.float32)
    y1 = labels_like(y, 1, device)
    net = fast_view(net, x1)  # channels-last fp32: the same surface, faster
    if path.dim() != 4 or path.shape[1:] != x1.shape[1:] or len(path) < 2:
        raise ValueError(
            f"path must be (T + 1, {', '.join(map(str, x1.shape[1:]))}) with T >= 1, "
            f"got {tuple(path.shape)}"
        )
    deltas = path.detach().to(device, torch.float32)
    end = deltas[-1]
    if float(end.abs().amax()) == 0.0:
        raise ValueError("the attack never left the clean image: its path spans no plane")

    # u along the end point; v the second direction, orthogonalised (in float64)
    u64 = end.double()
    gen = torch.Generator().manual_seed(int(seed))
    random_dir = rademacher(x1.shape[1:], gen).to(device, torch.float64)
    used = second
    sign, clean = loss_sign_gradient(net, x1, y1, loss)
    raw = sign.double() if second == "gradient" else random_dir

    def orthogonal(w: Tensor) -> Tensor:
        return w - (w * u64).sum() / (u64 * u64).sum() * u64

    v64 = orthogonal(raw)
    if float(v64.norm()) <= PARALLEL_TOL * float(raw.norm()):
        used, v64 = "random", orthogonal(random_dir)
    u64 = u64 / u64.abs().amax()
    v64 = v64 / v64.abs().amax()

    # the path's projection: u ⟂ v, so each coordinate is an inner product over a norm²
    flat = deltas.flatten(1).double()
    ua = (flat @ u64.flatten()) / (u64 * u64).sum()
    vb = (flat @ v64.flatten()) / (v64 * v64).sum()
    coords = torch.stack([ua, vb], dim=1)
    proj = ua[:, None] * u64.flatten() + vb[:, None] * v64.flatten()
    off_plane = (flat - proj).abs().amax(dim=1)

    reach = max(float(eps), float(coords.abs().max()))
    half = float(span) if span is not None else MARGIN * reach
    steps = symmetric_steps(half, grid)
    u32, v32 = u64.float(), v64.float()
    grid_loss = plane_losses(
        net, x1, y1, steps, u32, v32, loss=loss, batch_size=batch_size, callback=callback
    )
    with torch.no_grad():
        real = (x1 + deltas).clamp(0.0, 1.0)
        path_loss = per_sample_loss(net(real), y1.expand(len(real)), loss).float().cpu()
        on_plane = (x1 + proj.float().view_as(deltas)).clamp(0.0, 1.0)
        proj_loss = per_sample_loss(net(on_plane), y1.expand(len(real)), loss).float().cpu()

    return AttackPlane(
        a=steps.clone(),
        b=steps.clone(),
        loss=grid_loss,
        u=u32.cpu(),
        v=v32.cpu(),
        path=coords.float().cpu(),
        path_loss=path_loss,
        projected_loss=proj_loss,
        off_plane=off_plane.float().cpu(),
        box=_box_polygon(u64.cpu(), v64.cpu(), float(eps)),
        eps=float(eps),
        second=used,
        clean_loss=clean,
        label=int(y1.item()),
        loss_fn=loss,
        seed=int(seed),
    )
