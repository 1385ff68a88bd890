"""Where PGD goes: one traced attack, the loss on the plane that holds its walk, and what
changes inside the network step by step (the "Attack path" page).

PGD walks on a loss surface. On a ReLU network the surface is smooth and the walk climbs
it; on a k-WTA network it is shattered (Sec. 3, Theorem 1: a tiny step swaps winners and
the output jumps), so the gradient at one point says little about the next and the walk
stalls. :func:`attack_path` runs the attack with its trace
(:func:`kwta.explorer.runs.attack_with_trace`, every step's perturbation kept), cuts the
loss along the plane through the clean image and the walk's end point
(:func:`kwta.analysis.attack_plane.attack_plane`) and measures, at every step, the share of
the activation pattern that differs from the clean image's (:func:`path_pattern_change`).

Nothing here modifies a model it is given: models are shared by every session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kwta.analysis._common import Callback, to_plain
from kwta.analysis.attack_plane import AttackPlane, SecondDirection, attack_plane
from kwta.analysis.patterns import activation_patterns, changed_fraction
from kwta.explorer.runs import AttackRun, attack_with_trace

__all__ = [
    "DEFAULT_GRID",
    "AttackPath",
    "attack_path",
    "path_pattern_change",
    "path_records",
]

#: Grid points per axis of the plane on the page (41 × 41 = one 41-grid landscape).
DEFAULT_GRID = 41


@dataclass(frozen=True, eq=False)
class AttackPath:
    """An attack's walk on its own loss plane, step by step.

    Attributes:
        run: The traced attack (:attr:`AttackRun.path` holds every step's perturbation).
        plane: The loss on the plane through ``x`` spanned by the end point and a second
            direction, with the walk projected onto it.
        changed: ``(T + 1,)`` share of the activation pattern (all activation layers
            together) that differs from the clean image's at each step; row 0 is 0.
    """

    run: AttackRun
    plane: AttackPlane
    changed: Tensor

    @property
    def steps(self) -> int:
        """Number of attack steps."""
        return self.run.steps

    def logits(self, step: int) -> Tensor:
        """``(C,)`` the logits at ``step`` (0: the clean image)."""
        return self.run.trace.logits[step, 0]

    def to_dict(self) -> dict[str, Any]:
        """The plane (without its directions), the per-step records and the attack's settings."""
        return {
            "attack": {k: v for k, v in self.run.to_dict().items() if k != "trace"},
            "plane": self.plane.to_dict(),
            "steps": path_records(self),
        }


def path_pattern_change(model: nn.Module, x: Tensor, path: Tensor) -> Tensor:
    """Share of the activation pattern changed from the clean image's, at every step.

    For each step ``t`` the patterns ``A(x)`` and ``A(x + δ_t)`` of every activation layer
    are compared: ``|A(x) Δ A(x + δ_t)| / (|A(x)| + |A(x + δ_t)|)`` over all layers together
    (for k-WTA, where ``|A| = k``, the share of winners replaced; Sec. 3).

    Args:
        model: Network with activation layers (k-WTA, LWTA or ReLU); not modified.
        x: One image ``(C, H, W)`` or ``(1, C, H, W)`` in [0, 1].
        path: ``(T + 1, C, H, W)`` the perturbations ``δ_t`` (row 0: zeros).

    Returns:
        ``(T + 1,)`` float64 on the CPU; zeros for a model without activation layers.
    """
    x1 = x.reshape(1, *x.shape[-3:]).detach().float()
    images = (x1.to(path.device) + path.float()).clamp(0.0, 1.0)
    masks = activation_patterns(model, torch.cat([x1.to(images.device), images]))
    if not masks:
        return torch.zeros(len(path), dtype=torch.float64)
    flat = torch.cat([m.reshape(m.shape[0], -1) for m in masks.values()], dim=1).cpu()
    return changed_fraction(flat[:1].expand(len(path), -1), flat[1:])


def attack_path(
    model: nn.Module,
    x: Tensor,
    label: int,
    *,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool = False,
    seed: int = 0,
    second: SecondDirection = "gradient",
    grid: int = DEFAULT_GRID,
    loss: Literal["ce", "margin"] = "ce",
    batch_size: int = 256,
    callback: Callback | None = None,
    precision: str = "auto",
) -> AttackPath:
    """PGD on one image, the loss on the plane that holds its walk, the pattern at each step.

    Args:
        model: Classifier on pixels in [0, 1], eval mode; not modified.
        x: One image ``(3, H, W)`` or ``(1, 3, H, W)`` in [0, 1].
        label: Its true class.
        eps: L∞ radius of the attack (and of the ε-box drawn on the plane).
        alpha: PGD step size.
        steps: PGD steps (≥ 1).
        random_start: Start at a random point of the ε-ball (the walk then starts away
            from the origin of the plane).
        seed: Seeds the random start and the plane's random direction.
        second: The plane's second direction: ``"gradient"`` (the sign of the gradient at
            the clean image, PGD's first step without a random start) or ``"random"``.
        grid: Points per axis of the plane.
        loss: The attack's and the plane's loss, ``"ce"`` or ``"margin"``.
        batch_size: Grid points per forward pass.
        callback: ``callback(done, total)``: attack steps, then grid points.
        precision: The PGD steps' precision (the plane and every number are fp32).

    Returns:
        An :class:`AttackPath` of CPU tensors.

    Raises:
        ValueError: Bad settings, or an attack that never left the clean image (``eps``
            or ``alpha`` 0): its walk spans no plane.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    total = steps + grid * grid

    def on_step(step: int, _steps: int, *_: Any) -> None:
        if callback is not None:
            callback(step, total)

    def on_grid(done: int, _total: int) -> None:
        if callback is not None:
            callback(steps + done, total)

    run = attack_with_trace(
        model, x, label, eps=eps, alpha=alpha, steps=steps, loss=loss,
        random_start=random_start, seed=seed, callback=on_step, keep_path=True,
        precision=precision,
    )  # fmt: skip
    assert run.path is not None  # keep_path=True
    plane = attack_plane(
        model, run.x, label, run.path, eps=eps, second=second, grid=grid, seed=seed,
        loss=loss, batch_size=batch_size, callback=on_grid,
    )  # fmt: skip
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    changed = path_pattern_change(model, run.x.to(device), run.path.to(device))
    return AttackPath(run=run, plane=plane, changed=changed)


def path_records(p: AttackPath) -> list[dict[str, Any]]:
    """One record per step: its plane coordinates, the loss at the real step and at its
    projection, how far it leaves the plane, the prediction and the pattern changed."""
    plane, trace = p.plane, p.run.trace
    return [
        {
            "step": t,
            "a": float(plane.path[t, 0]),
            "b": float(plane.path[t, 1]),
            "loss": float(plane.path_loss[t]),
            "loss_projected": float(plane.projected_loss[t]),
            "off_plane": float(plane.off_plane[t]),
            "pred": int(trace.pred[t, 0]),
            "pattern_changed": float(p.changed[t]),
            "logits": to_plain(trace.logits[t, 0]),
        }
        for t in range(p.steps + 1)
    ]
