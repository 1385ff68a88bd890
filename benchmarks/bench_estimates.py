"""How close the pages' expected times (:mod:`kwta.explorer.estimates`) come to the real runs.

Usage:
    python benchmarks/bench_estimates.py [--models relu-nat,kwta0.1-nat]

For each page job — PGD-40 with its trace, a 21×21 and a 50×50 landscape, the adaptive
attack at its 4 000-query default (which stops at its first success, so its estimate is a
bound), the toy fit at its default and at the heaviest settings a link can ask for —
the estimate the page would show (units × a unit timed here) beside the measured time of
the same call (:data:`kwta.explorer.actions.PAGE_ACTIONS`, one run after a warm-up), side
by side in one run on one machine. Prints a Markdown table; measured / estimated near 1
means the page tells the truth.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from kwta.analysis.toy import toy_fit
from kwta.data import cifar10_sample
from kwta.explorer import estimates
from kwta.explorer.actions import ADAPTIVE_BUDGET, ActionInputs, get_action
from kwta.utils import default_device
from kwta.zoo.hub import list_pretrained, load_pretrained
from kwta.zoo.summary import default_pair


def measured(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default=None, help="comma-separated pretrained names")
    args = p.parse_args(argv)
    device = default_device()
    names = args.models.split(",") if args.models else list(default_pair(list_pretrained()))
    sample = cifar10_sample("test")
    x, y = sample.tensors([2], device=device)
    xs, ys = sample.tensors(sample.balanced_indices(32, seed=0), device=device)
    rows = [
        "| page job | model | estimated (s) | measured (s) | measured / estimated |",
        "|---|---|---:|---:|---:|",
    ]

    def add(what: str, model: str, est: estimates.Estimate, fn: Callable[[], object]) -> None:
        fn()  # warm-up, as a server that has run once
        real = measured(fn)
        rows.append(
            f"| {what} | {model} | {est.seconds:.2f} | {real:.2f} | {real / est.seconds:.2f} |"
        )
        print(rows[-1], file=sys.stderr, flush=True)

    for name in names:
        model = load_pretrained(name, device)
        inputs = ActionInputs(model, x, int(y), xs, ys)
        step = estimates.gradient_step_seconds(model, x, key=name)
        image = estimates.forward_image_seconds(model, x, key=name)
        add("Live attack: PGD-40", name, estimates.attack_estimate([step], 40),
            lambda i=inputs: get_action("attack").run(i))  # fmt: skip
        for grid in (21, 50):
            add(f"Loss landscape: {grid}×{grid}", name,
                estimates.landscape_estimate([image], grid),
                lambda i=inputs, g=grid: get_action("landscape").run(i, {"grid": g}))  # fmt: skip
        add(f"Adaptive: ≤ {ADAPTIVE_BUDGET} queries (a bound)", name,
            estimates.query_estimate(image, ADAPTIVE_BUDGET),
            lambda i=inputs: get_action("adaptive").run(i))  # fmt: skip
    for n_points, width, depth, steps in ((8, 64, 2, 2000), (64, 512, 4, 1000)):
        step_s, fixed_s = estimates.toy_step_seconds(
            n_points=n_points, width=width, depth=depth, ratio=0.1
        )
        add(f"Toy fit: {depth}×{width}, {n_points} points, {steps} steps", "MLP",
            estimates.toy_estimate(step_s, fixed_s, steps),
            lambda n=n_points, w=width, d=depth, k=steps: toy_fit(
                n_points=n, width=w, depth=d, ratio=0.1, steps=k))  # fmt: skip
    print("\n".join(rows))


if __name__ == "__main__":
    main()
