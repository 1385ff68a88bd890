"""Wall time of PGD's walk drawn on its loss plane (:func:`kwta.analysis.attack_plane`).

Usage:
    python benchmarks/bench_attack_plane.py [--models relu-nat,kwta0.1-nat] [--grid 41]
        [--steps 40] [--repeats 3]

Per model, on one image of the bundled sample: PGD-40 with its trace and every step's
perturbation (:func:`kwta.explorer.runs.attack_with_trace`, ``keep_path=True``), then the
loss on a ``grid × grid`` plane through the walk's end point with the walk projected on it —
the cost the attack-path view will pay per model (target: ≤ 5 s on a 2-core CPU). Median of
``--repeats`` runs after a warm-up. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kwta import paper
from kwta.analysis.attack_plane import attack_plane
from kwta.data import cifar10_sample
from kwta.explorer.runs import attack_with_trace
from kwta.zoo.hub import load_pretrained

IMAGE = 2  # the page benchmark's image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="relu-nat,kwta0.1-nat")
    parser.add_argument("--grid", type=int, default=41)
    parser.add_argument("--steps", type=int, default=paper.PGD_STEPS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    x, y = cifar10_sample("test").tensors([IMAGE])
    print(f"torch threads: {torch.get_num_threads()}; image #{IMAGE}; grid {args.grid}²\n")
    print("| model | PGD path (s) | plane (s) | total (s) |")
    print("|---|---:|---:|---:|")
    for name in args.models.split(","):
        model = load_pretrained(name)
        times: list[tuple[float, float]] = []
        for _ in range(args.repeats + 1):  # the first is the warm-up
            t0 = time.perf_counter()
            run = attack_with_trace(
                model, x[0], int(y[0]), eps=paper.EPS, alpha=paper.STEP_SIZE, steps=args.steps,
                keep_path=True,
            )  # fmt: skip
            t1 = time.perf_counter()
            assert run.path is not None
            attack_plane(model, x[0], int(y[0]), run.path, eps=paper.EPS, grid=args.grid)
            times.append((t1 - t0, time.perf_counter() - t1))
        walk = statistics.median(t for t, _ in times[1:])
        plane = statistics.median(p for _, p in times[1:])
        print(f"| {name} | {walk:.2f} | {plane:.2f} | {walk + plane:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
