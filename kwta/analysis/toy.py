"""The 1-D toy fit of the paper's Fig. 1: a k-WTA and a ReLU MLP fit the same
curve; the k-WTA fit's discontinuities are located by bisection.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kwta.analysis._common import Callback, to_plain
from kwta.models import MLP
from kwta.nn.functional import check_ratio

__all__ = [
    "DENSE_POINTS",
    "JUMP_HALVINGS",
    "Jumps",
    "ToyFit",
    "toy_fit",
    "toy_mlp",
]

#: Evaluation points of a fit (:func:`toy_fit`'s ``n_dense``).
DENSE_POINTS = 2000
#: Bisections of every dense interval when the jumps are located.
JUMP_HALVINGS = 40


@dataclass(frozen=True, eq=False)
class Jumps:
    """Discontinuities of a 1-D function located by bisection.

    Attributes:
        locations: ``(J,)`` input positions (to ~1e-12 or float64 resolution).
        sizes: ``(J,)`` signed jumps ``f(right) − f(left)`` across each location.
    """

    locations: Tensor
    sizes: Tensor

    def __len__(self) -> int:
        return int(self.locations.numel())

    def to_dict(self) -> dict[str, Any]:
        """Plain lists."""
        return {"locations": to_plain(self.locations), "sizes": to_plain(self.sizes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Jumps:
        """The inverse of :meth:`to_dict` (float64 tensors)."""
        return cls(_f64(data["locations"]), _f64(data["sizes"]))


@dataclass(frozen=True, eq=False)
class ToyFit:
    """A 1-D regression by a k-WTA and a ReLU MLP of the same size (Fig. 1).

    Attributes:
        x_train: ``(n_points,)`` training inputs, sorted.
        y_train: ``(n_points,)`` target values at ``x_train``.
        x_dense: ``(n_dense,)`` evaluation grid over ``x_range``.
        target_dense: ``(n_dense,)`` target function on the grid.
        kwta_dense: ``(n_dense,)`` k-WTA fit on the grid.
        relu_dense: ``(n_dense,)`` ReLU fit on the grid.
        kwta_jumps: Discontinuities of the k-WTA fit.
        relu_jumps: Discontinuities of the ReLU fit (none: ReLU nets are continuous).
        kwta_loss: Final training MSE of the k-WTA fit.
        relu_loss: Final training MSE of the ReLU fit.
        ratio: k-WTA sparsity ratio γ.
        seed: Seed of the points and of the (shared) initialisation.
    """

    x_train: Tensor
    y_train: Tensor
    x_dense: Tensor
    target_dense: Tensor
    kwta_dense: Tensor
    relu_dense: Tensor
    kwta_jumps: Jumps
    relu_jumps: Jumps
    kwta_loss: float
    relu_loss: float
    ratio: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (jumps as nested dicts)."""
        return {f: to_plain(getattr(self, f)) for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToyFit:
        """The inverse of :meth:`to_dict` (float64 tensors), e.g. for a stored result."""
        series = ("x_train", "y_train", "x_dense", "target_dense", "kwta_dense", "relu_dense")
        return cls(
            **{k: _f64(data[k]) for k in series},
            kwta_jumps=Jumps.from_dict(data["kwta_jumps"]),
            relu_jumps=Jumps.from_dict(data["relu_jumps"]),
            kwta_loss=float(data["kwta_loss"]),
            relu_loss=float(data["relu_loss"]),
            ratio=float(data["ratio"]),
            seed=int(data["seed"]),
        )


def _f64(values: Any) -> Tensor:
    return torch.as_tensor(values, dtype=torch.float64).reshape(-1)


def _default_target(x: Tensor) -> Tensor:
    return torch.sin(math.pi * x)


def _find_jumps(
    f: Callable[[Tensor], Tensor], xs: Tensor, ys: Tensor, atol: float, halvings: int
) -> Jumps:
    """Bisect every interval ``[xs[i], xs[i+1]]`` towards its largest jump.

    At each halving the half with the larger ``|Δf|`` is kept. For a continuous
    (piecewise-linear) function the difference across the final interval shrinks
    like its width (2⁻ʰᵃˡᵛⁱⁿᵍˢ of the spacing) to ~0, while across a discontinuity
    it stays at the jump; differences above ``atol`` are reported, one per
    interval. All intervals are bisected together (one batched evaluation per
    halving), so a jump partly cancelled by the slope in its dense interval is
    not missed; a jump smaller than ``|slope|·spacing`` may be.
    """
    lo, hi = xs[:-1].clone(), xs[1:].clone()
    flo, fhi = ys[:-1].clone(), ys[1:].clone()
    for _ in range(halvings):
        mid = (lo + hi) / 2
        fmid = f(mid)
        left = (fmid - flo).abs() >= (fhi - fmid).abs()
        hi, fhi = torch.where(left, mid, hi), torch.where(left, fmid, fhi)
        lo, flo = torch.where(left, lo, mid), torch.where(left, flo, fmid)
    size = fhi - flo
    keep = size.abs() > atol
    return Jumps(locations=((lo + hi) / 2)[keep].cpu(), sizes=size[keep].cpu())


#: Adam steps between two progress reports of :func:`toy_fit`.
REPORT_EVERY = 50


def _fit(
    model: nn.Module, x: Tensor, y: Tensor, steps: int, lr: float, report: Callable[[int], None]
) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(1, steps + 1):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % REPORT_EVERY == 0 or step == steps:
            report(step)
    with torch.no_grad():
        return float(F.mse_loss(model(x), y))


def _seeded_init(net: nn.Module, seed: int) -> nn.Module:
    """Re-draw every ``nn.Linear`` as PyTorch's default init does, from a private generator.

    Seeding the global RNG instead would race with other threads (app sessions).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
                if m.bias is not None:
                    bound = 1.0 / math.sqrt(m.in_features)
                    nn.init.uniform_(m.bias, -bound, bound, generator=gen)
    return net


def toy_mlp(width: int, depth: int, act: str, *, ratio: float = 0.1, seed: int = 0) -> nn.Module:
    """The toy fit's float64 MLP (1 input, 1 output), initialised from ``seed`` alone.

    Args:
        width: Hidden units per layer.
        depth: Hidden layers.
        act: ``"kwta"`` (with ``ratio``) or ``"relu"``.
        ratio: k-WTA sparsity ratio γ.
        seed: Seeds PyTorch's default initialisation, from a private generator (the
            global RNG is left as it was).
    """
    kwargs = {"ratio": ratio} if act == "kwta" else {}
    with torch.device("meta"):  # no storage, no draw from the global RNG
        shell = MLP(1, 1, width=width, depth=depth, act=act, act_kwargs=kwargs)
    return _seeded_init(shell.to_empty(device="cpu"), seed).to(torch.float64)


def toy_fit(
    *,
    n_points: int = 8,
    width: int = 64,
    depth: int = 2,
    ratio: float = 0.1,
    seed: int = 0,
    steps: int = 2000,
    lr: float = 1e-2,
    x_range: tuple[float, float] = (-1.0, 1.0),
    n_dense: int = DENSE_POINTS,
    target: Callable[[Tensor], Tensor] | None = None,
    jump_rtol: float = 1e-3,
    device: torch.device | str | None = None,
    callback: Callback | None = None,
) -> ToyFit:
    """Fit a 1-D function with a k-WTA MLP and a ReLU MLP (Fig. 1).

    ``n_points`` inputs are drawn uniformly from ``x_range`` (seeded) and labelled
    by ``target`` (default ``sin(πx)``). Two :class:`models.MLP` networks of the
    same size, one with k-WTA-``ratio`` and one with ReLU, start from the same
    weights (same seed) and are trained full-batch with Adam on the MSE, in
    float64. Both are then evaluated on ``n_dense`` evenly spaced points and their
    discontinuities located by bisecting every dense interval :data:`JUMP_HALVINGS` times (see
    :func:`_find_jumps`); jumps larger than ``jump_rtol`` times the range of the
    fit are reported. The k-WTA fit is piecewise linear with disconnected pieces
    (Sec. 3, "Piecewise linearity"), the ReLU fit is continuous.

    Args:
        n_points: Training points (≥ 1).
        width: Hidden units per layer.
        depth: Hidden layers.
        ratio: k-WTA sparsity ratio γ in (0, 1].
        seed: Seeds the points and the initialisation; the global RNG is left as it was.
        steps: Adam steps.
        lr: Adam learning rate.
        x_range: Input interval ``(low, high)``.
        n_dense: Evaluation points (≥ 2).
        target: Function of a float64 tensor; default ``sin(πx)``.
        jump_rtol: Reporting threshold relative to the fit's range on the grid.
        device: Where to train (default CPU).
        callback: ``callback(done, 2·steps)`` every :data:`REPORT_EVERY` Adam steps of
            either network (the k-WTA one first); an exception it raises (a
            cancellation) stops the fit.

    Returns:
        A :class:`ToyFit`. With the defaults it takes ~3.5 s of CPU time (two
        networks × 2 000 Adam steps). The networks are tiny, so intra-op threads
        only add synchronisation; on a busy machine ``torch.set_num_threads(1)``
        avoids large slow-downs.

    Raises:
        ValueError: Bad sizes, range or ratio.
    """

    check_ratio(ratio)
    lo_x, hi_x = (float(v) for v in x_range)
    if not (math.isfinite(lo_x) and math.isfinite(hi_x) and lo_x < hi_x):
        raise ValueError(f"x_range must be (low, high) with low < high, got {x_range!r}")
    for name, val, least in (
        ("n_points", n_points, 1),
        ("width", width, 1),
        ("depth", depth, 1),
        ("steps", steps, 0),
        ("n_dense", n_dense, 2),
    ):
        if isinstance(val, bool) or not isinstance(val, int) or val < least:
            raise ValueError(f"{name} must be an int >= {least}, got {val!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    fn = target if target is not None else _default_target

    gen = torch.Generator().manual_seed(seed)
    x_train = (
        lo_x + (hi_x - lo_x) * torch.rand(n_points, generator=gen, dtype=torch.float64)
    ).sort()
    xt = x_train.values.to(dev)
    yt = fn(xt).to(torch.float64)
    x_dense = torch.linspace(lo_x, hi_x, n_dense, dtype=torch.float64, device=dev)

    fits: dict[str, tuple[Tensor, Jumps, float]] = {}
    for i, act in enumerate(("kwta", "relu")):
        net = toy_mlp(width, depth, act, ratio=ratio, seed=seed).to(dev)

        def report(step: int, offset: int = i * steps) -> None:
            if callback is not None:
                callback(offset + step, 2 * steps)

        final = _fit(net, xt[:, None], yt[:, None], steps, lr, report)
        net.eval()

        def f(z: Tensor, net: nn.Module = net) -> Tensor:
            with torch.no_grad():
                return net(z[:, None])[:, 0]

        dense = f(x_dense)
        spread = float(dense.max() - dense.min())
        atol = jump_rtol * max(spread, 1e-12)
        fits[act] = (dense.cpu(), _find_jumps(f, x_dense, dense, atol, JUMP_HALVINGS), final)

    return ToyFit(
        x_train=xt.cpu(),
        y_train=yt.cpu(),
        x_dense=x_dense.cpu(),
        target_dense=fn(x_dense).to(torch.float64).cpu(),
        kwta_dense=fits["kwta"][0],
        relu_dense=fits["relu"][0],
        kwta_jumps=fits["kwta"][1],
        relu_jumps=fits["relu"][1],
        kwta_loss=fits["kwta"][2],
        relu_loss=fits["relu"][2],
        ratio=float(ratio),
        seed=seed,
    )
