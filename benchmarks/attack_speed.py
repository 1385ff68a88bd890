"""PGD and the loss grid on the fast path, side by side with what a user would pick instead.

Usage:
    python benchmarks/attack_speed.py [--models relu-nat,kwta0.1-nat] [--n 200]
        [--batches 100,1] [--steps 20] [--rounds 3] [--grid 50] [--data PATH] [--device cpu]

In one run, round-robin (every row once per round, the median of ``--rounds`` after a
warm-up round), on the same held-out test images (the first ``--n`` of the test split:
``--data`` / ``$KWTA_DATA``, else the bundled sample):

- ``kwta.attacks.pgd_linf`` in fp32 NCHW (how it ran before the fast path:
  ``memory_layout("nchw")``), fp32 channels-last, ``precision="auto"`` and bf16 steps;
- torchattacks' ``PGD`` and Foolbox 3's ``LinfPGD`` when installed (the app never imports
  them; see docs/benchmarks.md for their own environment);
- a plain 10-line PGD loop;

PGD-``--steps``, ε = 8/255, α = 2/255, random start, at each batch size of ``--batches``
(batch 1 times the first ``--n1`` images one at a time), and the ``--grid``² loss landscape
(:func:`kwta.analysis.landscape.loss_landscape`) of one image in fp32 NCHW and fp32
channels-last. Prints Markdown tables: seconds, robust accuracy (fp32 verdicts on the
returned points), and each row's speed-up over torchattacks (or the plain loop without it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kwta.analysis.landscape import loss_landscape
from kwta.attacks import is_correct, pgd_linf
from kwta.data import cifar10, cifar10_sample
from kwta.nn.precision import cpu_bf16_supported, memory_layout
from kwta.zoo.hub import load_pretrained

EPS, ALPHA = 8 / 255, 2 / 255

Runner = Callable[[nn.Module, Tensor, Tensor, int], Tensor]


def _ours(precision: str, layout: str = "auto") -> Runner:
    def run(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
        g = torch.Generator().manual_seed(0)
        with memory_layout(layout):  # type: ignore[arg-type]
            return pgd_linf(
                model, x, y, eps=EPS, alpha=ALPHA, steps=steps, generator=g, precision=precision
            )

    return run


def _plain(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
    """The loop a user writes in ten lines."""
    x_adv = (x + torch.empty_like(x).uniform_(-EPS, EPS)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + ALPHA * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - EPS), x + EPS).clamp(0, 1)
    return x_adv.detach()


def _torchattacks() -> Runner | None:
    try:
        import torchattacks  # type: ignore[import-not-found]
    except ImportError:
        return None

    def run(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
        atk = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=steps, random_start=True)
        return atk(x, y)  # type: ignore[no-any-return]

    return run


def _foolbox() -> Runner | None:
    try:
        import foolbox  # type: ignore[import-not-found]
    except ImportError:
        return None

    def run(model: nn.Module, x: Tensor, y: Tensor, steps: int) -> Tensor:
        fmodel = foolbox.PyTorchModel(model, bounds=(0, 1))
        attack = foolbox.attacks.LinfPGD(abs_stepsize=ALPHA, steps=steps, random_start=True)
        _, clipped, _ = attack(fmodel, x, y, epsilons=EPS)
        return clipped  # type: ignore[no-any-return]

    return run


def _rows() -> dict[str, Runner | None]:
    return {
        "kwta pgd_linf, fp32 NCHW (before)": _ours("fp32", "nchw"),
        "kwta pgd_linf, fp32 channels-last": _ours("fp32"),
        'kwta pgd_linf, precision="auto"': _ours("auto"),
        "kwta pgd_linf, bf16 steps": _ours("bf16"),
        "torchattacks 3.5 PGD": _torchattacks(),
        "Foolbox 3 LinfPGD": _foolbox(),
        "plain loop": _plain,
    }


@contextlib.contextmanager
def _timer(out: list[float]) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    out.append(time.perf_counter() - t0)


def _attack_all(
    run: Runner, model: nn.Module, x: Tensor, y: Tensor, batch: int, steps: int
) -> Tensor:
    return torch.cat(
        [run(model, x[s : s + batch], y[s : s + batch], steps) for s in range(0, len(x), batch)]
    )


def bench_pgd(
    model: nn.Module, x: Tensor, y: Tensor, *, batch: int, steps: int, rounds: int
) -> dict[str, dict[str, Any]]:
    """Seconds (median) and robust accuracy of every available row on ``x``."""
    rows = {k: v for k, v in _rows().items() if v is not None}
    times: dict[str, list[float]] = {k: [] for k in rows}
    acc: dict[str, float] = {}
    for r in range(rounds + 1):  # round 0 warms every row up (native kernel, oneDNN caches)
        for name, run in rows.items():
            torch.manual_seed(r)
            sink: list[float] = []
            with _timer(sink):
                x_adv = _attack_all(run, model, x, y, batch, steps)
            if r:
                times[name] += sink
            ok = is_correct(model, x, y) & is_correct(model, x_adv, y)
            acc[name] = float(ok.float().mean())
    return {k: {"s": statistics.median(times[k]), "acc": acc[k]} for k in rows}


def bench_grid(model: nn.Module, x: Tensor, y: int, *, grid: int, rounds: int) -> dict[str, float]:
    out: dict[str, list[float]] = {"fp32 NCHW (before)": [], "fp32 channels-last": []}
    for r in range(rounds + 1):
        for name, layout in (("fp32 NCHW (before)", "nchw"), ("fp32 channels-last", "auto")):
            sink: list[float] = []
            with memory_layout(layout), _timer(sink):  # type: ignore[arg-type]
                loss_landscape(model, x, y, grid=grid, span=0.1)
            if r:
                out[name] += sink
    return {k: statistics.median(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="relu-nat,kwta0.1-nat")
    parser.add_argument("--n", type=int, default=200, help="images at batch >= 2 (200)")
    parser.add_argument("--n1", type=int, default=10, help="images at batch 1 (10)")
    parser.add_argument("--batches", default="100,1")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--grid", type=int, default=50)
    parser.add_argument(
        "--data", default=None, help="CIFAR-10 (default: $KWTA_DATA, else the sample)"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    root = args.data or os.environ.get("KWTA_DATA")
    test = cifar10("test", root) if root else cifar10_sample("test")
    print(
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, native bf16: {cpu_bf16_supported()}; device {device}; "
        f"data {test.source.split(':')[0]}; PGD-{args.steps} eps 8/255 alpha 2/255 random start; "
        f"median of {args.rounds} rounds after a warm-up\n"
    )
    for name in args.models.split(","):
        model = load_pretrained(name, device)
        for batch in (int(b) for b in args.batches.split(",")):
            n = args.n if batch > 1 else args.n1
            x, y = test.tensors(slice(0, n), device=device)
            res = bench_pgd(model, x, y, batch=batch, steps=args.steps, rounds=args.rounds)
            base_name = "torchattacks 3.5 PGD" if "torchattacks 3.5 PGD" in res else "plain loop"
            base = res[base_name]["s"]
            print(f"### {name}, batch {batch}, {n} images\n")
            print(f"| PGD-{args.steps} | seconds | robust accuracy | speed-up vs {base_name} |")
            print("|---|---:|---:|---:|")
            for row, r in res.items():
                print(f"| {row} | {r['s']:.2f} | {r['acc']:.1%} | {base / r['s']:.2f}× |")
            missing = [k for k, v in _rows().items() if v is None]
            if missing:
                print(f"\n(not installed: {', '.join(missing)})")
            print()
        x, y = test.tensors(slice(0, 1), device=device)
        grid = bench_grid(model, x[0], int(y[0]), grid=args.grid, rounds=args.rounds)
        before = grid["fp32 NCHW (before)"]
        print(f"### {name}, {args.grid}×{args.grid} loss landscape, test image #0\n")
        print("| grid | seconds | speed-up |")
        print("|---|---:|---:|")
        for row, s in grid.items():
            print(f"| {row} | {s:.2f} | {before / s:.2f}× |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
