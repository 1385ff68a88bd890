"""Analyses of k-WTA networks: the experiments behind the paper's figures and theorems.

Implements the analyses of Xiao, Zhong, Zheng, "Enhancing Adversarial Defense by
k-Winners-Take-All" (ICLR 2020):

- :func:`loss_landscape`: the attacker's loss landscape around one image
  (Sec. 4.3, Fig. 5; App. D.5, Fig. 7);
- :func:`toy_fit`: a 1-D fit by a k-WTA and a ReLU MLP, with the k-WTA fit's
  discontinuities located by bisection (Fig. 1);
- :func:`activation_patterns`, :func:`pattern_change`, :func:`pattern_overlap`,
  :func:`overlap_summary`: activation patterns A(x) of Eq. 2 and how they move
  under tiny input changes and between inputs (Sec. 3, Theorems 1 and 2);
- :func:`theorem1_width_sweep`: Theorem 1 on a single random layer, the chance
  of a pattern change as a function of the layer width (Sec. 3, App. C.1);
- :func:`weight_line`: the loss along a line in weight space (Sec. 3, Fig. 3c);
- :func:`gamma_sweep`: accuracy as a function of the sparsity ratio γ without
  retraining (Sec. 4.2, Fig. 4).

Every function leaves the model it is given as it was: no parameter, buffer,
ratio or mode change, no hook left behind. Analyses run the model in eval mode;
a model (or any submodule) in training mode is analysed through a deep copy put
in eval mode. Results are small frozen dataclasses of CPU tensors with a
``to_dict()`` of plain lists for plotting and download.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .activations import KWTA, get_ratio, set_ratio
from .attacks import is_correct
from .functional import check_ratio, k_from_ratio, kwta_mask

__all__ = [
    "GammaSweep",
    "Jumps",
    "Landscape",
    "PatternChange",
    "Theorem1Sweep",
    "ToyFit",
    "WeightLine",
    "activation_patterns",
    "gamma_sweep",
    "loss_landscape",
    "overlap_summary",
    "pattern_change",
    "pattern_overlap",
    "theorem1_width_sweep",
    "toy_fit",
    "weight_line",
]

LossName = Literal["ce", "margin"]
Callback = Callable[[int, int], None]
Attack = Callable[[nn.Module, Tensor, Tensor], Tensor]

#: Largest landscape grid side accepted (201² = 40 401 forward passes).
MAX_GRID = 201


# --------------------------------------------------------------------------- helpers


def _export(value: Any) -> Any:
    """Tensors to (nested) lists, tuples to lists, dataclass-like to dicts; the rest as is."""
    if isinstance(value, Tensor):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_export(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _export(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def _device_of(model: nn.Module, fallback: torch.device) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return fallback


def _eval_view(model: nn.Module) -> nn.Module:
    """``model`` itself if it is wholly in eval mode, else a deep copy in eval mode."""
    if any(m.training for m in model.modules()):
        return copy.deepcopy(model).eval()
    return model


def _as_image_batch(x: Tensor) -> Tensor:
    """``(C, H, W)`` or ``(1, C, H, W)`` → ``(1, C, H, W)``."""
    if x.dim() == 3:
        return x.unsqueeze(0)
    if x.dim() == 4 and x.shape[0] == 1:
        return x
    raise ValueError(f"expected one image of shape (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")


def _as_batch(x: Tensor) -> Tensor:
    """``(C, H, W)`` → ``(1, C, H, W)``; batched inputs as they are."""
    if x.dim() == 3:
        return x.unsqueeze(0)
    if x.dim() < 2:
        raise ValueError(f"expected a batch of inputs, got shape {tuple(x.shape)}")
    return x


def _labels(y: int | Tensor, n: int, device: torch.device) -> Tensor:
    t = torch.as_tensor(y, dtype=torch.long).reshape(-1).to(device)
    if t.numel() != n:
        raise ValueError(f"expected {n} label(s), got {t.numel()}")
    return t


def _margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-sample margin ``max_{j≠y} z_j − z_y`` (positive once misclassified)."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return other - true


def _per_sample_loss(logits: Tensor, y: Tensor, loss: str) -> Tensor:
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if loss == "margin":
        return _margin_loss(logits, y)
    raise ValueError(f"unknown loss {loss!r}; choose 'ce' or 'margin'")


def _check_loss(loss: str) -> None:
    if loss not in ("ce", "margin"):
        raise ValueError(f"unknown loss {loss!r}; choose 'ce' or 'margin'")


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _rademacher(shape: Sequence[int], generator: torch.Generator) -> Tensor:
    """±1 entries (CPU, float32) drawn from ``generator``."""
    return torch.randint(0, 2, tuple(shape), generator=generator).float().mul_(2).sub_(1)


# --------------------------------------------------------------------------- Sec. 4.3: landscape


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
            "e1": _export(self.e1),
            "e2": _export(self.e2),
            "loss": _export(self.loss),
            "clean_loss": self.clean_loss,
            "label": self.label,
            "loss_fn": self.loss_fn,
            "seed": self.seed,
        }
        if directions:
            out["g1"] = _export(self.g1)
            out["g2"] = _export(self.g2)
        return out


def _symmetric_steps(span: float, grid: int) -> Tensor:
    """``grid`` points from ``-span`` to ``span``; the middle is exactly 0 for odd ``grid``."""
    ticks = torch.arange(grid, dtype=torch.float64) * 2 - (grid - 1)
    return (ticks * (span / (grid - 1))).float()


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
    _check_batch_size(batch_size)
    _check_loss(loss)
    net = _eval_view(model)
    x1 = _as_image_batch(x)
    device = _device_of(net, x1.device)
    x1 = x1.detach().to(device)
    y1 = _labels(y, 1, device)

    with torch.enable_grad():  # also under an outer no_grad
        xg = x1.clone().requires_grad_(True)
        clean = _per_sample_loss(net(xg), y1, loss).sum()
        (grad,) = torch.autograd.grad(clean, xg)
    g1 = grad.sign()[0].detach()
    g2 = _rademacher(x1.shape[1:], torch.Generator().manual_seed(seed)).to(device, x1.dtype)

    steps = _symmetric_steps(float(span), grid)
    e = steps.to(device, x1.dtype)
    total = grid * grid
    out = torch.empty(total, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, total, batch_size):
            idx = torch.arange(start, min(start + batch_size, total), device=device)
            c1 = e[idx // grid].view(-1, *([1] * g1.dim()))
            c2 = e[idx % grid].view(-1, *([1] * g2.dim()))
            pts = (x1 + c1 * g1 + c2 * g2).clamp_(0.0, 1.0)
            batch_loss = _per_sample_loss(net(pts), y1.expand(len(idx)), loss)
            out[start : start + len(idx)] = batch_loss.float().cpu()
            if callback is not None:
                callback(start + len(idx), total)
    return Landscape(
        e1=steps.clone(),
        e2=steps.clone(),
        loss=out.view(grid, grid),
        g1=g1.cpu(),
        g2=g2.cpu(),
        clean_loss=float(clean.detach()),
        label=int(y1.item()),
        loss_fn=loss,
        seed=seed,
    )


# --------------------------------------------------------------------------- Fig. 1: toy fit


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
        return {"locations": _export(self.locations), "sizes": _export(self.sizes)}


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
        return {f: _export(getattr(self, f)) for f in self.__dataclass_fields__}


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


def _fit(model: nn.Module, x: Tensor, y: Tensor, steps: int, lr: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
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
    n_dense: int = 2000,
    target: Callable[[Tensor], Tensor] | None = None,
    jump_rtol: float = 1e-3,
    device: torch.device | str | None = None,
) -> ToyFit:
    """Fit a 1-D function with a k-WTA MLP and a ReLU MLP (Fig. 1).

    ``n_points`` inputs are drawn uniformly from ``x_range`` (seeded) and labelled
    by ``target`` (default ``sin(πx)``). Two :class:`models.MLP` networks of the
    same size, one with k-WTA-``ratio`` and one with ReLU, start from the same
    weights (same seed) and are trained full-batch with Adam on the MSE, in
    float64. Both are then evaluated on ``n_dense`` evenly spaced points and their
    discontinuities located by bisecting every dense interval 40 times (see
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

    Returns:
        A :class:`ToyFit`. With the defaults it takes ~3.5 s of CPU time (two
        networks × 2 000 Adam steps). The networks are tiny, so intra-op threads
        only add synchronisation; on a busy machine ``torch.set_num_threads(1)``
        avoids large slow-downs.

    Raises:
        ValueError: Bad sizes, range or ratio.
    """
    from models import MLP  # local: models imports kwta

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
    for act, kwargs in (("kwta", {"ratio": ratio}), ("relu", {})):
        with torch.device("meta"):  # no storage, no draw from the global RNG
            shell = MLP(1, 1, width=width, depth=depth, act=act, act_kwargs=kwargs)
        net = _seeded_init(shell.to_empty(device="cpu"), seed)
        net = net.to(dev, torch.float64)
        final = _fit(net, xt[:, None], yt[:, None], steps, lr)
        net.eval()

        def f(z: Tensor, net: nn.Module = net) -> Tensor:
            with torch.no_grad():
                return net(z[:, None])[:, 0]

        dense = f(x_dense)
        spread = float(dense.max() - dense.min())
        atol = jump_rtol * max(spread, 1e-12)
        fits[act] = (dense.cpu(), _find_jumps(f, x_dense, dense, atol, halvings=40), final)

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


# --------------------------------------------------------------------------- Sec. 3: patterns


def _has_mask(module: nn.Module) -> bool:
    return callable(getattr(module, "mask", None))


@contextmanager
def _capture_masks(model: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Forward pre-hooks recording ``module.mask(input)`` for every activation layer.

    Only forwards run by the calling thread are recorded (a model shared with
    other threads may run their forwards meanwhile). A module called more than
    once per forward gets keys ``name``, ``name#2``, … The hooks are removed on exit.
    """
    masks: dict[str, Tensor] = {}
    owner = threading.get_ident()
    handles = []

    def make_hook(name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            if threading.get_ident() != owner:
                return
            key, n = name, 1
            while key in masks:
                n += 1
                key = f"{name}#{n}"
            masks[key] = module.mask(inputs[0]).detach()  # type: ignore[operator]

        return hook

    try:
        for name, module in model.named_modules():
            if _has_mask(module):
                handles.append(module.register_forward_pre_hook(make_hook(name or "<root>")))
        yield masks
    finally:
        for h in handles:
            h.remove()


def _patterns(net: nn.Module, x: Tensor) -> dict[str, Tensor]:
    with _capture_masks(net) as masks, torch.no_grad():
        net(x)
    return dict(masks)


def activation_patterns(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """The activation pattern A(x) of every activation layer (Sec. 3, Eq. 2).

    Layers are the modules with a ``mask`` method (:class:`kwta.KWTA`,
    :class:`kwta.LWTA`, :class:`kwta.ReLU`); each mask is ``module.mask`` applied
    to the layer's input, captured by a temporary forward pre-hook.

    Args:
        model: Network; not modified (the hooks are removed before returning).
        x: Batch ``(B, …)``, or one image ``(C, H, W)``.

    Returns:
        Layer name → boolean mask shaped like the layer input (on the model's
        device), in forward order. Empty if the model has no such layer.
    """
    net = _eval_view(model)
    xb = _as_batch(x)
    return _patterns(net, xb.detach().to(_device_of(net, xb.device)))


@dataclass(frozen=True, eq=False)
class PatternChange:
    """How activation patterns move under random sign perturbations (Sec. 3, Theorem 1).

    For each ε, inputs ``x' = clamp(x + ε·s, 0, 1)`` with ``s`` random ±1 are
    compared with ``x``. Per layer and sample the *changed fraction* is
    ``|A(x) Δ A(x')| / (|A(x)| + |A(x')|)``: for k-WTA (``|A| = k``) the share of
    winners replaced, in general a normalised Hamming distance (0: same pattern,
    1: disjoint; 0 when both are empty).

    Attributes:
        eps: ``(E,)`` perturbation sizes (L∞, pixel units).
        layers: Layer names, in forward order.
        changed_fraction: ``(E, L)`` changed fraction, averaged over samples and directions.
        changed_any: ``(E, L)`` share of (sample, direction) pairs whose pattern changed at all.
        n_samples: Inputs in the batch.
        n_dirs: Random directions per input.
        seed: Seed of the directions.
    """

    eps: Tensor
    layers: tuple[str, ...]
    changed_fraction: Tensor
    changed_any: Tensor
    n_samples: int
    n_dirs: int
    seed: int

    @property
    def mean_changed_fraction(self) -> Tensor:
        """``(E,)`` changed fraction averaged over layers."""
        return self.changed_fraction.mean(dim=1)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers."""
        out = {f: _export(getattr(self, f)) for f in self.__dataclass_fields__}
        out["mean_changed_fraction"] = _export(self.mean_changed_fraction)
        return out


def _changed_fraction(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample ``|a Δ b| / (|a| + |b|)`` of boolean masks ``(B, …)``."""
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    sym = (a2 ^ b2).sum(dim=1).double()
    tot = (a2.sum(dim=1) + b2.sum(dim=1)).double()
    return torch.where(tot > 0, sym / tot.clamp_min(1), torch.zeros_like(sym))


def pattern_change(
    model: nn.Module,
    x: Tensor,
    eps_values: Sequence[float],
    *,
    n_dirs: int = 4,
    seed: int = 0,
    callback: Callback | None = None,
) -> PatternChange:
    """Share of each layer's activation pattern that changes under tiny perturbations.

    Sec. 3, Theorem 1: in a wide k-WTA layer even a tiny perturbation changes the
    activation pattern A(x) with high probability, which is what makes the
    network discontinuous almost everywhere in input space. For each ε in
    ``eps_values`` and each of ``n_dirs`` random sign directions ``s`` (the same
    directions for every ε), the patterns of ``clamp(x + ε·s, 0, 1)`` are compared
    with those of ``x``; see :class:`PatternChange` for the measures.

    Args:
        model: Network with activation layers that have a ``mask`` method; not modified.
        x: Batch ``(B, C, H, W)`` (or one image) in [0, 1].
        eps_values: Perturbation sizes ≥ 0 (pixel units, e.g. ``1/255``).
        n_dirs: Random sign directions per input.
        seed: Seed of the directions.
        callback: ``callback(done, total)`` over the ``len(eps_values)·n_dirs`` forwards.

    Returns:
        A :class:`PatternChange`.

    Raises:
        ValueError: Negative or non-finite ε, ``n_dirs < 1``, or no activation layers.
    """
    eps = [float(e) for e in eps_values]
    if not eps or any(not math.isfinite(e) or e < 0 for e in eps):
        raise ValueError(f"eps_values must be a non-empty list of finite values >= 0, got {eps}")
    if isinstance(n_dirs, bool) or not isinstance(n_dirs, int) or n_dirs < 1:
        raise ValueError(f"n_dirs must be a positive int, got {n_dirs!r}")
    net = _eval_view(model)
    xb = _as_batch(x)
    device = _device_of(net, xb.device)
    xb = xb.detach().to(device)
    clean = _patterns(net, xb)
    if not clean:
        raise ValueError("the model has no activation layers with a .mask method")
    layers = tuple(clean)
    gen = torch.Generator().manual_seed(seed)
    dirs = [_rademacher(xb.shape, gen).to(device, xb.dtype) for _ in range(n_dirs)]

    frac = torch.zeros(len(eps), len(layers), dtype=torch.float64)
    anyc = torch.zeros(len(eps), len(layers), dtype=torch.float64)
    total, done = len(eps) * n_dirs, 0
    for i, e in enumerate(eps):
        for d in dirs:
            masks = _patterns(net, (xb + e * d).clamp(0.0, 1.0))
            for j, name in enumerate(layers):
                cf = _changed_fraction(clean[name], masks[name]).cpu()
                frac[i, j] += cf.mean()
                anyc[i, j] += (cf > 0).double().mean()
            done += 1
            if callback is not None:
                callback(done, total)
    return PatternChange(
        eps=torch.tensor(eps, dtype=torch.float64),
        layers=layers,
        changed_fraction=frac / n_dirs,
        changed_any=anyc / n_dirs,
        n_samples=int(xb.shape[0]),
        n_dirs=n_dirs,
        seed=seed,
    )


def pattern_overlap(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Pairwise overlap of the activation patterns of different inputs (Sec. 3, Theorem 2).

    Theorem 2: in a wide k-WTA layer the patterns of different inputs are nearly
    disjoint, so the weights serving each input can be trained almost
    independently. The overlap of inputs ``i`` and ``j`` is
    ``|A(xᵢ) ∩ A(xⱼ)| / sqrt(|A(xᵢ)|·|A(xⱼ)|)``, i.e. ``|A(xᵢ) ∩ A(xⱼ)| / k`` for
    k-WTA, where every pattern has ``k`` winners (0 if a pattern is empty). For
    random k-subsets of ``N`` units its expectation is ``k/N = γ``.

    Args:
        model: Network; not modified.
        x: Batch ``(B, …)`` of different inputs.

    Returns:
        Layer name → ``(B, B)`` float64 overlap matrix on the CPU (diagonal 1).
        See :func:`overlap_summary` for the mean off-diagonal overlap.
    """
    out: dict[str, Tensor] = {}
    for name, mask in activation_patterns(model, x).items():
        m = mask.reshape(mask.shape[0], -1).double()
        inter = m @ m.T
        size = m.sum(dim=1)
        denom = (size[:, None] * size[None, :]).sqrt()
        out[name] = torch.where(denom > 0, inter / denom.clamp_min(1e-300), 0.0).cpu()
    return out


def overlap_summary(overlaps: dict[str, Tensor]) -> dict[str, float]:
    """Mean off-diagonal overlap per layer of a :func:`pattern_overlap` result (NaN for B = 1)."""
    out: dict[str, float] = {}
    for name, mat in overlaps.items():
        b = mat.shape[0]
        off = ~torch.eye(b, dtype=torch.bool)
        out[name] = float(mat[off].mean()) if b > 1 else math.nan
    return out


# --------------------------------------------------------------------------- Theorem 1


@dataclass(frozen=True, eq=False)
class Theorem1Sweep:
    """Chance that one random k-WTA layer's pattern changes, by width (Sec. 3, Theorem 1).

    Attributes:
        widths: ``(W,)`` layer widths ``l``.
        betas: ``(Bt,)`` relative perpendicular perturbation sizes ``β = d²(x, x')/‖x‖²``.
        change_prob: ``(W, Bt)`` share of trials with ``A(Wx) ≠ A(Wx')``.
        changed_fraction: ``(W, Bt)`` mean share of the ``k`` winners replaced.
        ratio: Sparsity ratio γ.
        in_dim: Input dimension ``m``.
        n_trials: Trials per width (fresh ``W``, ``x`` and perpendicular direction each).
        seed: Seed.
    """

    widths: Tensor
    betas: Tensor
    change_prob: Tensor
    changed_fraction: Tensor
    ratio: float
    in_dim: int
    n_trials: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers."""
        return {f: _export(getattr(self, f)) for f in self.__dataclass_fields__}


def theorem1_width_sweep(
    widths: Sequence[int] = (16, 64, 256, 1024, 4096),
    *,
    ratio: float = 0.1,
    in_dim: int = 16,
    betas: Sequence[float] = (1e-6, 1e-4, 1e-2),
    n_trials: int = 200,
    seed: int = 0,
    device: torch.device | str | None = None,
    callback: Callback | None = None,
) -> Theorem1Sweep:
    """Theorem 1 on one random layer: wider k-WTA layers change pattern under smaller perturbations.

    As in Sec. 3 and App. C.1: ``W ∈ R^{l×m}`` has i.i.d. ``N(0, 1/l)`` entries and
    ``b = 0``. Each trial draws ``W``, an input ``x ~ N(0, I_m)`` and a unit vector
    ``x⊥ ⟂ x``, and sets ``x' = x + d·x⊥`` with ``d = sqrt(β)·‖x‖``, so that
    ``d²(x, x')/‖x‖² = β`` (the theorem's perpendicular distance; rescaling ``x'``
    would not change its pattern since ``b = 0``). It records whether the k-WTA
    pattern ``A(Wx)``, ``k = ⌊γl⌋``, differs from ``A(Wx')``. Theorem 1 says that for
    ``l ≳ (m/(γβ))·log(m/(γβ))`` the pattern changes with high probability, so at a
    fixed β the change probability grows with ``l``.

    Args:
        widths: Layer widths ``l`` (each ≥ 1).
        ratio: Sparsity ratio γ in (0, 1].
        in_dim: Input dimension ``m`` (≥ 2, so that a perpendicular direction exists).
        betas: Relative perpendicular sizes β > 0.
        n_trials: Trials per width.
        seed: Seed.
        device: Where to compute (default CPU).
        callback: ``callback(done, total)`` over the widths.

    Returns:
        A :class:`Theorem1Sweep`.

    Raises:
        ValueError: Bad widths, ratio, dimension, betas or trial count.
    """
    check_ratio(ratio)
    ws = list(widths)
    if not ws or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in ws):
        raise ValueError(f"widths must be positive ints, got {ws}")
    bs = [float(b) for b in betas]
    if not bs or any(not math.isfinite(b) or b <= 0 for b in bs):
        raise ValueError(f"betas must be finite values > 0, got {bs}")
    if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 2:
        raise ValueError(f"in_dim must be an int >= 2, got {in_dim!r}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive int, got {n_trials!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = torch.Generator().manual_seed(seed)
    root_beta = torch.tensor(bs, dtype=torch.float64).sqrt()
    prob = torch.zeros(len(ws), len(bs), dtype=torch.float64)
    frac = torch.zeros(len(ws), len(bs), dtype=torch.float64)
    for wi, width in enumerate(ws):
        k = k_from_ratio(ratio, width)
        chunk = max(1, min(n_trials, 2_000_000 // (width * in_dim)))
        for start in range(0, n_trials, chunk):
            t = min(chunk, n_trials - start)
            w = torch.randn(t, width, in_dim, generator=gen, dtype=torch.float64) / math.sqrt(width)
            x = torch.randn(t, in_dim, generator=gen, dtype=torch.float64)
            r = torch.randn(t, in_dim, generator=gen, dtype=torch.float64)
            xn = x.norm(dim=1, keepdim=True)
            xhat = x / xn
            perp = r - (r * xhat).sum(dim=1, keepdim=True) * xhat
            perp = perp / perp.norm(dim=1, keepdim=True)
            xp = x[:, None, :] + (root_beta[None, :, None] * xn[:, :, None]) * perp[:, None, :]
            w, x, xp = w.to(dev), x.to(dev), xp.to(dev)
            a = kwta_mask(torch.einsum("tlm,tm->tl", w, x), ratio)
            ap = kwta_mask(torch.einsum("tlm,tbm->tbl", w, xp).reshape(-1, width), ratio)
            diff = (a[:, None, :] ^ ap.view(t, len(bs), width)).sum(dim=2).double().cpu()
            prob[wi] += (diff > 0).double().sum(dim=0)
            frac[wi] += (diff / (2 * k)).sum(dim=0)
        if callback is not None:
            callback(wi + 1, len(ws))
    return Theorem1Sweep(
        widths=torch.tensor(ws, dtype=torch.long),
        betas=torch.tensor(bs, dtype=torch.float64),
        change_prob=prob / n_trials,
        changed_fraction=frac / n_trials,
        ratio=float(ratio),
        in_dim=in_dim,
        n_trials=n_trials,
        seed=seed,
    )


# --------------------------------------------------------------------------- Fig. 3c: weights


@dataclass(frozen=True, eq=False)
class WeightLine:
    """Loss along a line ``w + α·d`` in weight space (Sec. 3, Fig. 3c).

    Attributes:
        alphas: ``(A,)`` step sizes α (in units of the normalised direction).
        loss: ``(A,)`` mean loss over the batch at ``w + α·d``.
        accuracy: ``(A,)`` accuracy over the batch at ``w + α·d``.
        direction: ``"gradient"`` or ``"random"``.
        normalization: ``"filter"`` or ``"global"``.
        loss_fn: ``"ce"`` or ``"margin"``.
        seed: Seed of the random direction.
    """

    alphas: Tensor
    loss: Tensor
    accuracy: Tensor
    direction: str
    normalization: str
    loss_fn: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings."""
        return {f: _export(getattr(self, f)) for f in self.__dataclass_fields__}


def _normalise_direction(
    d: dict[str, Tensor], w: dict[str, Tensor], normalization: str
) -> dict[str, Tensor]:
    if normalization == "global":
        dn = math.sqrt(sum(float((v.double() ** 2).sum()) for v in d.values()))
        wn = math.sqrt(sum(float((v.double() ** 2).sum()) for v in w.values()))
        factor = wn / dn if dn > 0 else 0.0
        return {n: v * factor for n, v in d.items()}
    out: dict[str, Tensor] = {}
    for n, v in d.items():
        rows_d = v.reshape(v.shape[0], -1) if v.dim() > 1 else v.reshape(1, -1)
        rows_w = w[n].reshape(rows_d.shape)
        dn = rows_d.norm(dim=1, keepdim=True)
        scale = torch.where(dn > 0, rows_w.norm(dim=1, keepdim=True) / dn.clamp_min(1e-30), 0.0)
        out[n] = (rows_d * scale).reshape(v.shape)
    return out


def weight_line(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    alphas: Sequence[float] | Tensor,
    direction: Literal["gradient", "random"] = "gradient",
    normalization: Literal["filter", "global"] = "filter",
    seed: int = 0,
    loss: LossName = "ce",
    batch_size: int = 256,
    callback: Callback | None = None,
) -> WeightLine:
    """Loss along a line in weight space (Sec. 3, "Why is the k-WTA network trainable?", Fig. 3c).

    Theorem 2 and Fig. 3c: although a k-WTA network is discontinuous in its
    weights, a weight change flips few activation patterns, so the *batch* loss
    is close to smooth along training directions. The loss over ``(x, y)`` is
    evaluated at ``w + α·d`` for every parameter ``w`` (frozen ones too) with
    :func:`torch.func.functional_call` on a private deep copy of the model (the
    call swaps parameters in temporarily, which a model shared with other threads
    must not see), so the model passed in is never touched. BatchNorm uses its
    running statistics (eval mode).

    The direction ``d`` is the negative gradient of the mean batch loss (a
    training step direction) for ``direction="gradient"``, or i.i.d. Gaussian
    (from ``seed``) for ``"random"``. It is then normalised:

    - ``"filter"`` (Li et al., 2018): each filter (row along the first dimension;
      a 1-D parameter counts as one filter) of ``d`` is scaled to the norm of the
      same filter of ``w``; so ``α = 1`` moves every filter by its own size. The
      scaling is positive per block, so a gradient direction stays a descent direction.
    - ``"global"``: ``d`` is scaled so that ``‖d‖ = ‖w‖`` over all parameters.

    Args:
        model: Classifier; not modified.
        x: Batch of inputs.
        y: Labels ``(B,)``.
        alphas: Step sizes α (include 0 to get the unperturbed loss).
        direction: ``"gradient"`` or ``"random"``.
        normalization: ``"filter"`` or ``"global"``.
        seed: Seed of the random direction.
        loss: ``"ce"`` or ``"margin"``; the gradient direction uses the same loss.
        batch_size: Inputs per forward pass.
        callback: ``callback(done, total)`` over the α values.

    Returns:
        A :class:`WeightLine`.

    Raises:
        ValueError: Unknown direction, normalisation or loss, empty ``alphas``, or a
            model without parameters.
    """
    if direction not in ("gradient", "random"):
        raise ValueError(f"direction must be 'gradient' or 'random', got {direction!r}")
    if normalization not in ("filter", "global"):
        raise ValueError(f"normalization must be 'filter' or 'global', got {normalization!r}")
    _check_loss(loss)
    _check_batch_size(batch_size)
    alpha = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1)
    if alpha.numel() == 0 or not bool(torch.isfinite(alpha).all()):
        raise ValueError("alphas must be a non-empty sequence of finite numbers")
    net = copy.deepcopy(model).eval()
    # every weight, frozen or not: the app's cached models have requires_grad off
    weights = {n: p.detach() for n, p in net.named_parameters()}
    if not weights:
        raise ValueError("the model has no parameters")
    xb = _as_batch(x)
    device = _device_of(net, xb.device)
    xb = xb.detach().to(device)
    yb = _labels(y, xb.shape[0], device)
    n = xb.shape[0]

    if direction == "gradient":
        leaves = {k: v.clone().requires_grad_(True) for k, v in weights.items()}
        grads = {k: torch.zeros_like(v) for k, v in weights.items()}
        for s in range(0, n, batch_size):
            with torch.enable_grad():
                out = torch.func.functional_call(net, leaves, (xb[s : s + batch_size],))
                part = _per_sample_loss(out, yb[s : s + batch_size], loss).sum() / n
                gs = torch.autograd.grad(part, list(leaves.values()), allow_unused=True)
            for k, g in zip(leaves, gs, strict=True):
                if g is not None:
                    grads[k] += g
        raw = {k: -g for k, g in grads.items()}
    else:
        gen = torch.Generator().manual_seed(seed)
        raw = {
            k: torch.randn(v.shape, generator=gen, dtype=torch.float32).to(v.device, v.dtype)
            for k, v in weights.items()
        }
    d = _normalise_direction(raw, weights, normalization)

    losses = torch.empty(alpha.numel(), dtype=torch.float64)
    accs = torch.empty(alpha.numel(), dtype=torch.float64)
    with torch.no_grad():
        for i, a in enumerate(alpha.tolist()):
            params = {k: w + a * d[k] for k, w in weights.items()}
            tot_loss, correct = 0.0, 0
            for s in range(0, n, batch_size):
                out = torch.func.functional_call(net, params, (xb[s : s + batch_size],))
                ys = yb[s : s + batch_size]
                tot_loss += float(_per_sample_loss(out, ys, loss).double().sum())
                correct += int((out.argmax(dim=1) == ys).sum())
            losses[i] = tot_loss / n
            accs[i] = correct / n
            if callback is not None:
                callback(i + 1, alpha.numel())
    return WeightLine(
        alphas=alpha,
        loss=losses,
        accuracy=accs,
        direction=direction,
        normalization=normalization,
        loss_fn=loss,
        seed=seed,
    )


# --------------------------------------------------------------------------- Fig. 4: γ sweep


@dataclass(frozen=True, eq=False)
class GammaSweep:
    """Accuracy of one set of weights evaluated at several sparsity ratios (Sec. 4.2, Fig. 4).

    Attributes:
        ratios: ``(R,)`` sparsity ratios γ, in the order given.
        clean_accuracy: ``(R,)`` accuracy on the clean inputs.
        robust_accuracy: ``(R,)`` share of inputs classified correctly both clean and after
            the attack, or ``None`` without an attack.
        original_ratio: The model's own γ (``None`` if its layers disagree).
    """

    ratios: Tensor
    clean_accuracy: Tensor
    robust_accuracy: Tensor | None
    original_ratio: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (``robust_accuracy`` is ``None`` without an attack)."""
        return {f: _export(getattr(self, f)) for f in self.__dataclass_fields__}


def gamma_sweep(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    ratios: Sequence[float],
    *,
    attack: Attack | None = None,
    batch_size: int = 256,
    callback: Callback | None = None,
) -> GammaSweep:
    """Clean (and robust) accuracy as the sparsity ratio γ changes (Sec. 4.2, Fig. 4).

    A deep copy of the model, in eval mode, is evaluated with every k-WTA layer
    set to each γ in turn (:func:`kwta.set_ratio`); the model passed in keeps its
    ratio. Note the paper *fine-tunes* the network at each γ (incremental
    fine-tuning, Sec. 2.2) before measuring Fig. 4; this sweep changes γ without
    retraining, so it shows the raw effect of γ on fixed weights: accuracy
    usually falls off away from the training ratio, faster towards small γ.

    Args:
        model: Network with k-WTA layers; not modified.
        x: Inputs.
        y: Labels ``(B,)``.
        ratios: Sparsity ratios γ, each in (0, 1].
        attack: Optional ``attack(model, x, y) -> x_adv``, run on the copy at each γ
            (for instance a PGD from :mod:`kwta.attacks` with its settings bound).
        batch_size: Inputs per forward pass for the accuracies.
        callback: ``callback(done, total)`` over the ratios.

    Returns:
        A :class:`GammaSweep`.

    Raises:
        ValueError: A ratio outside (0, 1], no ratios, or a model without k-WTA layers.
    """
    rs = [check_ratio(r) for r in ratios]
    if not rs:
        raise ValueError("ratios must not be empty")
    _check_batch_size(batch_size)
    if not any(isinstance(m, KWTA) for m in model.modules()):
        raise ValueError("the model has no k-WTA layers to set a ratio on")
    try:
        original: float | None = get_ratio(model)
    except ValueError:
        original = None
    net = copy.deepcopy(model).eval()
    xb = _as_batch(x)
    device = _device_of(net, xb.device)
    xb = xb.detach().to(device)
    yb = _labels(y, xb.shape[0], device)
    clean, robust = [], []
    for i, r in enumerate(rs):
        set_ratio(net, r)
        ok = is_correct(net, xb, yb, batch_size=batch_size)
        clean.append(float(ok.float().mean()))
        if attack is not None:
            x_adv = attack(net, xb, yb).detach().to(device)
            # robust = correct on the clean image and on its attacked version
            adv_ok = ok & is_correct(net, x_adv, yb, batch_size=batch_size)
            robust.append(float(adv_ok.float().mean()))
        if callback is not None:
            callback(i + 1, len(rs))
    return GammaSweep(
        ratios=torch.tensor(rs, dtype=torch.float64),
        clean_accuracy=torch.tensor(clean, dtype=torch.float64),
        robust_accuracy=torch.tensor(robust, dtype=torch.float64) if attack is not None else None,
        original_ratio=original,
    )
