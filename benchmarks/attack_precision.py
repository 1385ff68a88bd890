"""Does a bf16 step weaken PGD? The table that sets what ``precision="auto"`` means for attacks.

Usage:
    python benchmarks/attack_precision.py [--models all|NAME,NAME] [--n 10000]
        [--data PATH] [--out DIR] [--device cpu]

Per zoo model: the paper's PGD-40 (App. D.1: ε = 0.031, 40 steps of 0.003, random start,
seed 0) on the same ``--n`` class-balanced test images (``balanced_indices(n, seed=0)``;
10 000 = the whole test split), once with fp32 steps and once with bf16 steps; every verdict
is fp32 (:mod:`kwta.attacks._steps`). Each model's result is written to ``--out/NAME.json``
as soon as it is done, and a rerun skips what is there (a long run survives a stop).
Prints a Markdown table: robust accuracy with fp32 and with bf16 steps, the difference
(positive = bf16 steps made the attack weaker), and the seconds of each.

The rule (``kwta.attacks._steps.AUTO_STEP_PRECISION``): if bf16 steps never weaken the attack
by more than 0.5 point on any model, ``"auto"`` means bf16 where it is native; else fp32.

``--roughness``: instead, do bf16 forwards make the loss landscape rough? Per ReLU model, the
``--grid``² landscape (:func:`kwta.analysis.landscape.loss_landscape`, span 0.04) of the first
``--images`` test images in fp32 and in bf16; the largest jump between neighbouring grid
points, bf16 over fp32. Grids may offer bf16 only if that ratio stays within 1.10 on every
ReLU model (the explorer exists to show that the ReLU surface is smooth).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from kwta import paper
from kwta.analysis.landscape import loss_landscape
from kwta.data import cifar10
from kwta.evaluation.robust import evaluate
from kwta.nn.precision import FastView, cpu_bf16_supported
from kwta.utils import device_name
from kwta.zoo.hub import list_pretrained, load_pretrained
from kwta.zoo.summary import summarize_card

PRECISIONS = ("fp32", "bf16")


def measure(name: str, data: Any, n: int, device: torch.device) -> dict[str, Any]:
    model = load_pretrained(name, device)
    row: dict[str, Any] = {"model": name, "n": n, "device": device_name(device)}
    for precision in PRECISIONS:
        t0 = time.perf_counter()
        res = evaluate(
            model,
            data,
            attacks=("pgd",),
            n=n,
            clean_n=1,
            eps=paper.EPS,
            device=device,
            overrides={"pgd": {"precision": precision}},
        )
        row[precision] = {
            "robust_accuracy": res["attacks"]["pgd"]["accuracy"],
            "seconds": round(time.perf_counter() - t0, 1),
        }
    row["weaker_by_points"] = 100 * (
        row["bf16"]["robust_accuracy"] - row["fp32"]["robust_accuracy"]
    )
    return row


def largest_jump(loss: torch.Tensor) -> float:
    """The largest difference between neighbouring points of a ``(G, G)`` grid."""
    return float(max(loss.diff(dim=0).abs().max(), loss.diff(dim=1).abs().max()))


def roughness(names: list[str], data: Any, images: int, grid: int) -> None:
    print(f"largest neighbour jump of the {grid}x{grid} loss landscape (span 0.04), fp32 vs bf16\n")
    print("| model | image | fp32 | bf16 | bf16 / fp32 |")
    print("|---|---:|---:|---:|---:|")
    worst = 0.0
    for name in names:
        model = load_pretrained(name)
        bf16 = FastView(model, channels_last=True, precision="bf16")
        for i in range(images):
            x, y = data.tensors([i])
            jumps = [
                largest_jump(loss_landscape(m, x[0], int(y[0]), grid=grid, span=0.04).loss)
                for m in (model, bf16)
            ]
            ratio = jumps[1] / max(jumps[0], 1e-12)
            worst = max(worst, ratio)
            print(f"| {name} | {i} | {jumps[0]:.4g} | {jumps[1]:.4g} | {ratio:.2f} |", flush=True)
    print(
        f"\nworst ratio {worst:.2f}: bf16 grids {'may' if worst <= 1.10 else 'may not'} be offered"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--data", default=None, help="CIFAR-10 (default: $KWTA_DATA)")
    parser.add_argument("--out", default="runs/attack_precision")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--roughness", action="store_true", help="the grid check instead")
    parser.add_argument("--images", type=int, default=5, help="--roughness: test images (5)")
    parser.add_argument("--grid", type=int, default=50, help="--roughness: grid side (50)")
    args = parser.parse_args(argv)
    root = args.data or os.environ.get("KWTA_DATA")
    if not root:
        parser.error("name the full CIFAR-10 copy (--data or $KWTA_DATA)")
    device = torch.device(args.device)
    data = cifar10("test", root)
    cards = list_pretrained()
    names = sorted(cards) if args.models == "all" else args.models.split(",")
    if args.roughness:
        relu = [n for n in names if summarize_card(cards[n]).act == "relu"]
        roughness(relu, data, args.images, args.grid)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"PGD-40 (App. D.1) on {args.n} class-balanced test images, {device_name(device)}, "
        f"{torch.get_num_threads()} threads, native bf16: {cpu_bf16_supported()}\n"
    )
    print("| model | fp32 steps | bf16 steps | weaker by (points) | fp32 s | bf16 s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        path = out / f"{name}.json"
        row = json.loads(path.read_text()) if path.is_file() else None
        if row is None or row.get("n") != args.n:
            row = measure(name, data, args.n, device)
            path.write_text(json.dumps(row, indent=1) + "\n")
        fp32, bf16 = row["fp32"], row["bf16"]
        print(
            f"| {name} | {fp32['robust_accuracy']:.2%} | {bf16['robust_accuracy']:.2%} "
            f"| {row['weaker_by_points']:+.2f} | {fp32['seconds']:.0f} | {bf16['seconds']:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
