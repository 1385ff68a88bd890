"""Record, on each shipped card, which images survived a rerun of its PGD-40 evaluation.

Cards evaluated before evaluations stored ``robust_mask`` (``kwta.evaluation.robust.pack_mask``)
hold only the count. This reruns the card's own PGD-40 evaluation (same seeded subset, same
settings, the full CIFAR-10 test split) and writes the rerun into
``evaluation.attacks.pgd.rerun``: its robust count, its per-image mask, the machine, torch
version and date. Every other field, and the weights, stay as they are. With it,
``tests/test_pretrained.py`` checks the card image by image on the subset's first batch
instead of rerunning all of it, and the rerun's count against the card's.

    python scripts/record_robust_masks.py [--data ../shared/datasets/cifar10-jpeg.tar.gz]
        [--threads 2] [NAME ...]

Exits 1 (leaving that card unchanged) when a rerun's count is more than three images from
the card's — k-WTA is discontinuous, so another machine's rounding moves a few images.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from kwta.data import cifar10
from kwta.evaluation.robust import evaluate
from kwta.utils import device_name
from kwta.zoo.card import ModelCard
from kwta.zoo.hub import list_pretrained, load_pretrained, pretrained_dir

REPO = Path(__file__).resolve().parents[1]
SLACK = 3  # images of 1 000, as the full rerun's tolerance always was


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="cards to update (default: all)")
    parser.add_argument(
        "--data", default=str(REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz")
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cards = list_pretrained()
    names = args.names or sorted(cards)
    test = cifar10("test", args.data)
    failed = []
    for name in names:
        card = cards[name]
        subset = card["evaluation"]["subset"]
        t0 = time.perf_counter()
        result = evaluate(
            load_pretrained(name),
            test,
            attacks=["pgd"],
            n=subset["n"],
            clean_n=100,
            seed=subset["seed"],
            eps=card["metrics"]["eps"],
            device="cpu",
        )
        entry = result["attacks"]["pgd"]
        want = card["evaluation"]["attacks"]["pgd"]["robust"]
        same_subset = result["subset"]["indices_sha256"] == subset["indices_sha256"]
        seconds = time.perf_counter() - t0
        print(
            f"{name}: robust {entry['robust']} (card {want}), subset "
            f"{'same' if same_subset else 'DIFFERENT'}, {seconds:.0f} s",
            flush=True,
        )
        if abs(entry["robust"] - want) > SLACK or not same_subset:
            failed.append(name)
            continue
        path = pretrained_dir() / f"{name}.json"
        data = ModelCard.read(path).to_dict()
        data["evaluation"]["attacks"]["pgd"]["rerun"] = {
            "robust": entry["robust"],
            "n": entry["n"],
            "robust_mask": entry["robust_mask"],
            "device_name": device_name(torch.device("cpu")),
            "torch_version": torch.__version__,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "command": "python scripts/record_robust_masks.py",
        }
        ModelCard.from_dict(data, where=str(path)).write(path)
    if failed:
        print(f"not reproduced within {SLACK} images, unchanged: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
