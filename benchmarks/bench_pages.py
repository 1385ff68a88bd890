"""Wall time of each explorer page's main action, on the models the app would use.

Usage:
    python benchmarks/bench_pages.py [--device cpu|cuda] [--models relu-nat,kwta0.1-nat]

Times the library call behind each page's main button, one image from the
bundled sample, median of ``--repeats`` runs after a warm-up: PGD-40 with its
trace (Live attack), a 21×21 and a 50×50 loss landscape (Loss landscape), the
toy fit with the page defaults, the winner map plus the pattern-change curves
(Activation patterns), the adaptive attack on one image and the masking check on
32 images (Is k-WTA really robust?) and the Fig. 2 demo (Overview). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from kwta.analysis.landscape import loss_landscape
from kwta.analysis.masking import masking_indicators
from kwta.analysis.patterns import pattern_change
from kwta.analysis.toy import toy_fit
from kwta.data import cifar10_sample
from kwta.explorer.adaptive import adaptive_attack_with_trace, budget_schedule
from kwta.explorer.demo import activation_demo, random_vector
from kwta.explorer.patterns import activation_layers, winner_map
from kwta.explorer.runs import attack_with_trace
from kwta.utils import default_device
from kwta.zoo.hub import list_pretrained, load_pretrained


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default=None)
    p.add_argument("--models", default=None, help="comma-separated pretrained names")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    device = default_device(args.device)
    cards = list_pretrained()
    names = args.models.split(",") if args.models else list(cards)
    if not names:
        raise SystemExit("no pretrained models: train some first (see README)")
    sample = cifar10_sample("test")
    x, y = sample.tensors([2], device=device)
    xs, ys = sample.tensors(sample.balanced_indices(32, seed=0), device=device)
    budget = 4000
    samples = budget_schedule(budget, 20)
    label = int(y)
    eps_values = [float(v) for v in torch.logspace(-5, -1.5, 10)]
    rows = ["| page: main action | model | seconds |", "|---|---|---:|"]

    def add(what: str, model: str, fn: Callable[[], object], repeats: int = args.repeats) -> None:
        rows.append(f"| {what} | {model} | {timed(fn, repeats, device):.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)  # progress; the table goes to stdout

    for name in names:
        m = load_pretrained(name, device)
        add(
            "Live attack: PGD-40 + trace, 1 image",
            name,
            lambda m=m: attack_with_trace(m, x, label, eps=0.031, alpha=0.001, steps=40),
        )
        add(
            "Loss landscape 21×21 (CPU default)",
            name,
            lambda m=m: loss_landscape(m, x, label, grid=21),
        )
        add(
            "Loss landscape 50×50 (paper)",
            name,
            lambda m=m: loss_landscape(m, x, label, grid=50),
            repeats=1,
        )
        layer = next(iter(activation_layers(m, x)))
        add(
            "Activation patterns: winner map + change vs ε",
            name,
            lambda m=m, layer=layer: (
                winner_map(m, x, layer, eps=0.002),
                pattern_change(m, x, eps_values, n_dirs=2),
            ),
        )
        add(
            f"Is k-WTA robust?: adaptive PGD, 20 steps, ≤ {budget} queries, 1 image",
            name,
            lambda m=m: adaptive_attack_with_trace(
                m, x, label, eps=0.031, alpha=0.005, steps=20, sigma=8 / 255, samples=samples
            ),
        )
        add(
            "Is k-WTA robust?: masking check, 32 images",
            name,
            lambda m=m: masking_indicators(m, xs, ys, generator=torch.Generator().manual_seed(0)),
            repeats=1,
        )
    add(
        "1-D toy fit (defaults: 8 points, width 64, 2 000 steps)",
        "MLP",
        lambda: toy_fit(),
        repeats=1,
    )
    add(
        "Overview: Fig. 2 demo",
        "—",
        lambda: activation_demo(random_vector(12), ratio=0.25, group_size=2),
    )
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\ndevice: {dev}, {torch.get_num_threads()} threads, median of {args.repeats}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
