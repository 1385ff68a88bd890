"""Which fast adversarial training for the zoo's AT models? Three methods at one budget.

Usage:
    python benchmarks/compare_at.py --data PATH [--start relu-nat] [--subset 10000]
        [--budget 4] [--out runs/compare-at] [--device cpu|cuda]

The zoo issue asks to choose, by measurement, between PGD-AT with few steps, free AT
(m replays of each minibatch; Shafahi et al. 2019) and FGSM from a random start
("Fast is better than free", Wong, Rice, Kolter 2020). Each method fine-tunes the
same trained model (``--start``) on the same class-balanced subset of the training
images, with the same one-cycle schedule (the zoo's :data:`kwta.training.zoo.COMMON`),
for the same number of forward-backward passes per training image (``--budget``):

- ``fgsm``: 2 per minibatch (the attack step and the weight step), so budget / 2 passes;
- ``pgd`` with 3 steps (α = 2.5 ε / 3): 4 per minibatch, budget / 4 passes;
- ``free`` with m = budget: m replays of each minibatch, one pass.

Each model is then measured the way the zoo is: clean accuracy on ``--eval-n``
class-balanced test images, PGD-40 (the paper's settings, one random start) on
``--robust-n``. Prints a Markdown table (method, passes, training wall time, clean,
PGD-40) and writes it with the raw numbers to ``<out>/compare_at.json``; each
method's run is resumable (``<out>/at-<method>-….ckpt``), a finished one is not redone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from kwta import paper
from kwta.data import cifar10
from kwta.evaluation.robust import evaluate
from kwta.training.config import TrainConfig
from kwta.training.loop import train
from kwta.training.zoo import COMMON
from kwta.zoo.hub import list_pretrained, load_from_card, pretrained_dir

#: Forward-backward passes per minibatch of each method's training step.
COST = {"fgsm": 2, "pgd": 4, "free": 1}
#: PGD-AT's steps (few, as the issue asks) and step size (Madry's 2.5 ε / steps).
PGD_STEPS = 3


def method_config(
    method: str, *, budget: int, start: dict[str, Any], args: argparse.Namespace
) -> TrainConfig:
    """The fine-tuning run of one method at ``budget`` forward-backward passes per image."""
    kw = start["arch_kwargs"]
    extra: dict[str, Any] = {}
    if method == "pgd":
        extra = {"pgd_steps": PGD_STEPS, "pgd_alpha": 2.5 * paper.EPS / PGD_STEPS}
        epochs = budget // COST["pgd"]
    elif method == "free":
        extra = {"free_replays": budget}
        epochs = 1
    else:
        epochs = budget // COST["fgsm"]
    return TrainConfig(
        arch=start["arch"],
        width=int(kw["width"]),
        act=kw["act"],
        ratio=float((kw.get("act_kwargs") or {}).get("ratio", 0.1)),
        method=method,
        epochs=max(1, epochs),
        lr=args.lr,
        subset=args.subset,
        device=args.device,
        out_dir=str(args.out),
        name=f"at-{method}-b{budget}-n{args.subset}-{start['sha256'][:8]}",
        eval_n=0,
        init_from=str(pretrained_dir() / start["weights"]),
        init_sha256=start["sha256"],
        **(COMMON | extra),
    ).validate()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=None, help="CIFAR-10 (default: $KWTA_DATA or the sample)")
    p.add_argument("--start", default="relu-nat", help="pretrained model to fine-tune")
    p.add_argument("--subset", type=int, default=10_000, help="training images (10 000)")
    p.add_argument("--budget", type=int, default=4, help="fwd-bwd passes per image (4)")
    p.add_argument("--lr", type=float, default=0.05, help="one-cycle peak LR (0.05)")
    p.add_argument("--eval-n", type=int, default=1000, help="clean-accuracy images (1000)")
    p.add_argument("--robust-n", type=int, default=500, help="PGD-40 images (500)")
    p.add_argument("--methods", default="fgsm,pgd,free")
    p.add_argument("--out", type=Path, default=Path("runs/compare-at"))
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)
    if args.budget % COST["pgd"]:
        raise SystemExit("--budget must be a multiple of 4 (PGD-3 costs 4 per minibatch)")
    cards = list_pretrained()
    if args.start not in cards:
        raise SystemExit(f"--start: no pretrained model {args.start!r}; choose from {list(cards)}")
    start = cards[args.start]
    train_data, test_data = cifar10("train", args.data), cifar10("test", args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "compare_at.json"
    results: dict[str, Any] = json.loads(results_path.read_text()) if results_path.is_file() else {}
    rows = []
    for method in args.methods.split(","):
        cfg = method_config(method, budget=args.budget, start=start, args=args)
        key = f"{method}@{args.budget}/{args.subset}/{start['sha256'][:12]}"
        if key not in results:
            ckpt = args.out / f"{cfg.name}.ckpt" / "checkpoint.json"
            t0 = time.perf_counter()
            train(cfg, train_data=train_data, test_data=test_data, resume=ckpt.is_file())
            train_s = time.perf_counter() - t0
            model = load_from_card(args.out / f"{cfg.name}.json", device=args.device)
            ev = evaluate(model, test_data, attacks=["pgd"], n=args.robust_n, clean_n=args.eval_n)
            results[key] = {
                "method": method,
                "passes": cfg.epochs,
                "settings": {k: getattr(cfg, k) for k in ("pgd_steps", "free_replays", "lr")},
                "train_seconds": round(train_s, 1),
                "clean_accuracy": ev["clean"]["accuracy"],
                "clean_n": ev["clean"]["n"],
                "pgd40_accuracy": ev["attacks"]["pgd"]["accuracy"],
                "robust_n": ev["attacks"]["pgd"]["n"],
                "device": ev["device"],
                "threads": torch.get_num_threads(),
            }
            results_path.write_text(json.dumps(results, indent=1) + "\n")
        r = results[key]
        rows.append(
            f"| {method} | {r['passes']} | {r['train_seconds'] / 60:.1f} min | "
            f"{r['clean_accuracy']:.1%} | {r['pgd40_accuracy']:.1%} |"
        )
    print(f"fine-tuning {args.start} on {args.subset} images, {args.budget} fwd-bwd per image")
    print("| method | passes | training | clean | PGD-40 |\n|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
