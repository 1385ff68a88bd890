"""What a page's job will take, said before the click: its units times a unit timed here.

A shared server (docs/deploy.md, "Many users at once") stops any job after
``$KWTA_MAX_JOB_SECONDS``; a student should learn before pressing the button whether the
chosen settings fit. Each page's main job is a count of identical units — PGD steps
(a forward and a backward pass on one image), forward passes of grid points, Adam steps
of the toy MLPs, queries of the adaptive attack — so its time is the count times the
time of one unit. The unit is timed **on this server, on this device**, the first time
it is asked for (the fastest of a few tries, so a busy moment does not inflate it), and
remembered for the life of the process; the page multiplies.

- :class:`Estimate`: the seconds, how they were reckoned, and whether they pass a cap;
- :func:`unit_seconds`: time a unit once per key (process-wide, thread-safe);
- :func:`gradient_step_seconds`, :func:`forward_image_seconds`, :func:`toy_step_seconds`:
  the units themselves, on a real model and a real image;
- :func:`attack_estimate`, :func:`landscape_estimate`, :func:`path_estimate`,
  :func:`toy_estimate`, :func:`query_estimate`: the pages' jobs.

Nothing here modifies a model it is given (gradients are taken with respect to the
input only): models are shared by every session.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kwta.analysis.toy import DENSE_POINTS, JUMP_HALVINGS, toy_mlp
from kwta.attacks._steps import step_models
from kwta.nn.precision import fast_view

__all__ = [
    "TIMING_TRIES",
    "Estimate",
    "attack_estimate",
    "forward_image_seconds",
    "gradient_step_seconds",
    "landscape_estimate",
    "path_estimate",
    "query_estimate",
    "toy_estimate",
    "toy_step_seconds",
    "unit_seconds",
]

#: How many times a unit is timed; the fastest counts.
TIMING_TRIES = 3
#: Images per forward pass when a landscape's unit is timed (the page batches 256).
FORWARD_PROBE_BATCH = 16

_timed: dict[Hashable, float] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Estimate:
    """A job's expected time: ``fixed_s + units × unit_s``.

    Attributes:
        seconds: The expected wall time of the job, once it runs (not its wait in the queue).
        units: How many units the job is.
        unit: What one unit is, in words (``"PGD step"``).
        unit_s: One unit's time, measured on this server.
        fixed_s: Time that does not grow with the units (e.g. the toy fit's jump search).
        longest_s: The longest single job's time where the work is several jobs (one per
            model, each queued and capped on its own); ``None``: one job.
        at_most: The job may end sooner (an attack that stops at the first success): the
            seconds are its bound.
        detail: How the seconds were reckoned, where one ``units × unit_s`` does not say it.
    """

    seconds: float
    units: int
    unit: str
    unit_s: float
    fixed_s: float = 0.0
    longest_s: float | None = None
    at_most: bool = False
    detail: str | None = None

    def exceeds(self, cap_s: float | None) -> bool:
        """Whether a job would run past ``cap_s``, the server's limit per job (``None``: none)."""
        longest = self.seconds if self.longest_s is None else self.longest_s
        return cap_s is not None and longest > cap_s

    def text(self) -> str:
        """``"about 12 s (80 PGD steps × 0.15 s, timed on this server)"``."""
        how = self.detail or _count(self.units, self.unit, self.unit_s)
        if self.fixed_s:
            how += f" + {_short(self.fixed_s)}"
        bound = "at most about" if self.at_most else "about"
        return f"{bound} {_short(self.seconds)} ({how}, timed on this server)"


def _count(units: int, unit: str, unit_s: float) -> str:
    plural = unit[:-1] + "ies" if unit.endswith("y") else unit + "s"
    return f"{units:,} {unit if units == 1 else plural} × {_short(unit_s)}"


def _short(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    if seconds >= 10:
        return f"{seconds:.0f} s"
    if seconds >= 0.1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else f"{seconds * 1e6:.0f} µs"


def unit_seconds(key: Hashable, unit: Callable[[], object], *, tries: int = TIMING_TRIES) -> float:
    """The fastest of ``tries`` runs of ``unit()``, timed once per ``key`` in this process.

    Args:
        key: What the unit's time depends on (model, device, sizes); a key seen before
            returns its stored time without running ``unit``.
        unit: One unit of work.
        tries: Runs to time (≥ 1); the fastest counts.

    Returns:
        Seconds.
    """
    with _lock:
        if key in _timed:
            return _timed[key]
    best = math.inf
    for _ in range(max(1, tries)):
        t = time.perf_counter()
        unit()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    with _lock:
        _timed.setdefault(key, best)
        return _timed[key]


def _known(key: Hashable) -> float | None:
    """The stored time of ``key``, if it was timed already (nothing to build or warm up)."""
    with _lock:
        return _timed.get(key)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def gradient_step_seconds(model: nn.Module, x: Tensor, *, key: Hashable) -> float:
    """One PGD step on one image: a forward and a backward pass to the input.

    Args:
        model: The classifier (not modified: no parameter gets a gradient).
        x: ``(1, 3, H, W)`` or ``(3, H, W)`` an image in [0, 1].
        key: Names the model (e.g. its sha256); the device is added to it.
    """
    dev = _device(model)
    timed_key = ("gradient", key, str(dev))
    known = _known(timed_key)
    if known is not None:  # every page render asks: no warm-up pass once timed
        return known
    x1 = x.reshape(1, *x.shape[-3:]).to(dev)
    view = step_models(model, x1).step  # as the attacks step: layout and precision

    def step() -> None:
        z = x1.clone().requires_grad_(True)
        logits = view(z)
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, logits.argmax(1)), z)
        grad.sign_()

    step()  # warm-up (kernels, allocator) outside the timing
    return unit_seconds(timed_key, step)


def forward_image_seconds(model: nn.Module, x: Tensor, *, key: Hashable) -> float:
    """One image's share of a batched forward pass (no gradient), as a landscape makes them.

    Args:
        model: The classifier.
        x: One image in [0, 1], repeated :data:`FORWARD_PROBE_BATCH` times.
        key: Names the model; the device is added to it.
    """
    dev = _device(model)
    timed_key = ("forward", key, str(dev))
    known = _known(timed_key)
    if known is not None:
        return known / FORWARD_PROBE_BATCH
    batch = x.reshape(1, *x.shape[-3:]).to(dev).expand(FORWARD_PROBE_BATCH, -1, -1, -1)
    view = fast_view(model, batch)  # as the grids run: channels-last fp32

    def forward() -> None:
        with torch.no_grad():
            view(batch.contiguous())

    forward()  # warm-up
    return unit_seconds(timed_key, forward) / FORWARD_PROBE_BATCH


def toy_step_seconds(*, n_points: int, width: int, depth: int, ratio: float) -> tuple[float, float]:
    """The toy fit's cost: ``(seconds per Adam step of one network, fixed seconds)``.

    A k-WTA MLP of the chosen size (:func:`kwta.analysis.toy.toy_mlp`, float64, as the fit
    trains it) is timed for one full-batch Adam step on ``n_points`` points, and for one
    forward pass over the fit's :data:`~kwta.analysis.toy.DENSE_POINTS` evaluation points:
    every fit ends, for each of its two networks, with one such pass and
    :data:`~kwta.analysis.toy.JUMP_HALVINGS` more while the jumps are located.
    """
    key = ("toy", n_points, width, depth, ratio)
    step_known, dense_known = _known((*key, "adam step")), _known((*key, "dense pass"))
    if step_known is not None and dense_known is not None:  # no network to build again
        return step_known, 2 * (1 + JUMP_HALVINGS) * dense_known
    net = toy_mlp(width, depth, "kwta", ratio=ratio)
    x = torch.linspace(-1.0, 1.0, n_points, dtype=torch.float64)[:, None]
    y = torch.sin(math.pi * x)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    dense = torch.linspace(-1.0, 1.0, DENSE_POINTS, dtype=torch.float64)[:, None]

    def step() -> None:
        loss = F.mse_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def evaluate() -> None:
        with torch.no_grad():
            net(dense)

    step()  # warm-up
    step_s = unit_seconds((*key, "adam step"), step, tries=5)
    dense_s = unit_seconds((*key, "dense pass"), evaluate, tries=2)
    return step_s, 2 * (1 + JUMP_HALVINGS) * dense_s


def _per_model(unit_s: Sequence[float], units_each: int, unit: str) -> Estimate:
    """One job per model, ``units_each`` units each (``unit_s``: each model's unit)."""
    jobs = [units_each * s for s in unit_s]
    units = units_each * len(unit_s)
    seconds = sum(jobs)
    return Estimate(
        seconds=seconds,
        units=units,
        unit=unit,
        unit_s=seconds / units if units else 0.0,
        longest_s=max(jobs, default=0.0),
    )


def attack_estimate(step_s: Sequence[float], steps: int) -> Estimate:
    """PGD with ``steps`` steps on one image for each model (``step_s``: each one's step).

    One step more than ``steps`` per model: the clean image's forward pass and the final
    check, together about one step.
    """
    return _per_model(step_s, steps + 1, "PGD step")


def landscape_estimate(image_s: Sequence[float], grid: int) -> Estimate:
    """A ``grid × grid`` landscape for each model (``image_s``: each one's forward per image)."""
    return _per_model(image_s, grid * grid, "grid point")


def path_estimate(
    step_s: Sequence[float], image_s: Sequence[float], steps: int, grid: int
) -> Estimate:
    """The attack path for each model: PGD with ``steps`` steps (``step_s``: each model's
    step), then a ``grid × grid`` plane (``image_s``: each model's forward per image); one
    job per model."""
    walk = attack_estimate(step_s, steps)
    plane = landscape_estimate(image_s, grid)
    jobs = [(steps + 1) * s + grid * grid * i for s, i in zip(step_s, image_s, strict=True)]
    detail = (
        f"{_count(walk.units, walk.unit, walk.unit_s)} + "
        f"{_count(plane.units, plane.unit, plane.unit_s)}"
    )
    return Estimate(
        seconds=sum(jobs),
        units=walk.units + plane.units,
        unit="unit",
        unit_s=sum(jobs) / max(1, walk.units + plane.units),
        longest_s=max(jobs, default=0.0),
        detail=detail,
    )


def toy_estimate(step_s: float, fixed_s: float, steps: int) -> Estimate:
    """The toy fit: two networks × ``steps`` Adam steps, then their evaluation."""
    units = 2 * steps
    return Estimate(
        seconds=fixed_s + units * step_s, units=units, unit="Adam step", unit_s=step_s,
        fixed_s=fixed_s,
    )  # fmt: skip


def query_estimate(query_s: float, queries: int) -> Estimate:
    """An attack of at most ``queries`` forward passes of one image each, batched (``query_s``:
    one image's share of a batch); it stops at its first success."""
    return Estimate(
        seconds=queries * query_s, units=queries, unit="query", unit_s=query_s, at_most=True
    )
