"""The attack that broke k-WTA, at its published settings: GPU territory.

Usage:
    python benchmarks/fd_tramer.py --data PATH [--models kwta0.1-nat,kwta0.1-at] [--n 100]
        [--batch-size 4096] [--device cuda] [--json OUT.json]

Tramèr, Carlini, Brendel, Madry (NeurIPS 2020, Sec. 5.1) attacked k-WTA with PGD on
finite-difference gradients: 100 steps of 0.01 on the margin loss, antithetic Gaussian
samples with σ = 8/255, 100 → 20 000 pairs per step
(:data:`kwta.attacks.estimated.TRAMER_SETTINGS`; 764 049 forward passes for an image
that stays robust). The explorer's adaptive evaluation runs the same attack with 1/240 of
those queries (:data:`~kwta.attacks.estimated.CPU_SETTINGS`, registry name ``fd-pgd``)
so that it fits a CPU. This script runs :func:`kwta.evaluation.adaptive.evaluate_adaptive`
with ``fd-pgd`` at both settings on each model's class-balanced, seeded subset (standard
PGD-40 on the same images comes with it) and prints one table row per model; ``--json``
keeps the raw results. A model's results are written as soon as it finishes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from kwta.attacks.estimated import CPU_SETTINGS, TRAMER_SETTINGS
from kwta.data import CIFAR10Tensors, cifar10
from kwta.evaluation.adaptive import evaluate_adaptive
from kwta.utils import default_device
from kwta.zoo.hub import list_pretrained, load_from_card, pretrained_dir

#: The two settings compared, by label.
SETTINGS: dict[str, dict[str, Any]] = {"cpu": CPU_SETTINGS, "tramer": TRAMER_SETTINGS}


def run_model(
    name: str, card: dict[str, Any], data: CIFAR10Tensors, args: argparse.Namespace
) -> dict[str, Any]:
    """Both FD-PGD settings (and PGD-40, which each evaluation runs) on one model's subset."""
    device = default_device(args.device)
    model = load_from_card(pretrained_dir() / card["card_file"], device)
    out: dict[str, Any] = {"model": name, "sha256": card["sha256"], "n": args.n}
    for label, settings in SETTINGS.items():
        if label == "tramer" and args.steps is not None:  # a smoke run
            settings = {**settings, "steps": args.steps, "samples": (2, 8)}
        t0 = time.perf_counter()
        res = evaluate_adaptive(
            model,
            data,
            attacks=["fd-pgd"],
            overrides={"fd-pgd": {k: v for k, v in settings.items() if k != "eps"}},
            n=args.n,
            twin=None,
            batch_size=args.batch_size,
            seed=args.seed,
            device=device,
        )
        out[label] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "pgd40": res["attacks"]["pgd"]["accuracy"],
            "fd_pgd": res["attacks"]["fd-pgd"]["accuracy"],
            "robust": res["attacks"]["fd-pgd"]["robust"],
            "max_queries_per_image": res["attacks"]["fd-pgd"]["max_queries_per_image"],
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
            "device": str(device),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a Markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="CIFAR-10 location (default: bundled sample)")
    p.add_argument("--models", default="kwta0.1-nat", help="comma-separated pretrained names")
    p.add_argument("--n", type=int, default=100, help="class-balanced test images per model")
    p.add_argument("--batch-size", type=int, default=4096, help="images / rows per batch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="smoke run: this many steps, 2-8 pairs")
    p.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when present)")
    p.add_argument("--json", type=Path, default=None, help="write the raw results here")
    args = p.parse_args(argv)
    cards = list_pretrained()
    names = [m for m in args.models.split(",") if m]
    if unknown := [m for m in names if m not in cards]:
        p.error(f"no pretrained model named {', '.join(unknown)}; available: {', '.join(cards)}")
    data = cifar10("test", args.data)  # decoded once for every model
    rows: list[dict[str, Any]] = []
    print("| model | images | PGD-40 | FD-PGD, CPU settings | FD-PGD, Tramèr et al. | time (s) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        r = run_model(name, cards[name], data, args)
        rows.append(r)
        pct = "{:.1%}".format
        print(
            f"| {name} | {r['n']} | {pct(r['tramer']['pgd40'])} | {pct(r['cpu']['fd_pgd'])} | "
            f"{pct(r['tramer']['fd_pgd'])} | {r['cpu']['seconds']} + {r['tramer']['seconds']} |",
            flush=True,
        )
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
