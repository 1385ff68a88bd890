"""Wall time of each explorer page's main action, on the models the app would use.

Usage:
    python benchmarks/bench_pages.py [--device cpu|cuda] [--models relu-nat,kwta0.1-nat]
                                     [--actions attack,attack_path]

Times the library call behind each page's main button
(:data:`kwta.explorer.actions.PAGE_ACTIONS`: the calls the pages make, with their
defaults) on one image from the bundled sample — PGD-40 with its trace, the 21×21 and
50×50 loss landscapes, the Fig. 3c weight line, the winner map plus the pattern-change
curves, the adaptive attack on one image, the masking check on 32 images, the toy fit —
and the Fig. 2 demo (Overview), median of ``--repeats`` runs after a warm-up (one run
for the heavy ones). Prints a Markdown table. ``scripts/device_pages.py`` runs the
same calls on a GPU against the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from kwta.data import cifar10_sample
from kwta.explorer.actions import PAGE_ACTIONS, ActionInputs, PageAction, get_action
from kwta.explorer.demo import activation_demo, random_vector
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
    p.add_argument("--actions", default=None, help="comma-separated PAGE_ACTIONS keys (all)")
    args = p.parse_args(argv)
    device = default_device(args.device)
    cards = list_pretrained()
    names = args.models.split(",") if args.models else list(cards)
    if not names:
        raise SystemExit("no pretrained models: train some first (see README)")
    sample = cifar10_sample("test")
    x, y = sample.tensors([2], device=device)
    xs, ys = sample.tensors(sample.balanced_indices(32, seed=0), device=device)
    rows = ["| page: main action | model | seconds |", "|---|---|---:|"]

    def add(what: str, model: str, fn: Callable[[], object], repeats: int) -> None:
        rows.append(f"| {what} | {model} | {timed(fn, repeats, device):.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)  # progress; the table goes to stdout

    def call(action: PageAction, inputs: ActionInputs) -> Callable[[], object]:
        return lambda: action.run(inputs)

    keys = set(args.actions.split(",")) if args.actions else {a.key for a in PAGE_ACTIONS}
    actions = [get_action(k) for k in (a.key for a in PAGE_ACTIONS) if k in keys]
    inputs = [ActionInputs(load_pretrained(n, device), x, int(y), xs, ys) for n in names]
    for name, one in zip(names, inputs, strict=True):
        for action in (a for a in actions if a.per_model and a.applies_to(one.model)):
            what = f"{action.page}: {action.what}"
            add(what, name, call(action, one), action.repeats or args.repeats)
    for action in (a for a in actions if not a.per_model):  # the toy MLP: device only
        add(f"{action.page}: {action.what}", "MLP", call(action, inputs[-1]), 1)
    if not args.actions:
        add(
            "Overview: Fig. 2 demo",
            "—",
            lambda: activation_demo(random_vector(12), ratio=0.25, group_size=2),
            args.repeats,
        )
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\ndevice: {dev}, {torch.get_num_threads()} threads, median of {args.repeats}\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
