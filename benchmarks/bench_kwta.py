"""Speed of k-WTA against ReLU and against the authors' formulation, side by side in one run.

Usage:
    python benchmarks/bench_kwta.py [--device cpu|cuda] [--batch 128] [--width 64] [--repeats 5]

Prints two Markdown tables of median times and ratios:

1. forward+backward of the activation alone at ResNet-18's four feature-map
   shapes (batch 128 by default): ReLU, ours (:func:`kwta.functional.kwta`)
   and the reference (sorted ``topk`` + ``repeat`` + ``>=`` + multiply);
2. one whole ResNet-18 SGD training step with each activation.

Variants are timed round-robin (one repeat of each in turn) so that drift of
the machine affects them alike. Timings are not tests; see README for results.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

import models
from kwta import functional as F
from kwta.activations import register_act
from kwta.utils import default_device

RATIO = 0.1


class ReferenceKWTA(nn.Module):
    """The authors' formulation as a module, for the whole-network comparison."""

    def __init__(self, ratio: float = RATIO) -> None:
        super().__init__()
        self.ratio = ratio

    def forward(self, x: Tensor) -> Tensor:
        return F.kwta_reference(x, self.ratio)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def round_robin(
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds."""
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_activation(batch: int, width: int, repeats: int, device: torch.device) -> list[str]:
    rows = [
        "| feature map (B×C×H×W) | ReLU ms | ours ms | reference ms | ours/ReLU | ours/reference |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for i, hw in enumerate((32, 16, 8, 4)):
        shape = (batch, width * 2**i, hw, hw)
        x = torch.randn(shape, device=device, requires_grad=True)
        g = torch.randn(shape, device=device)

        def fb(act: Callable[[Tensor], Tensor], x: Tensor = x, g: Tensor = g) -> None:
            torch.autograd.grad(act(x), x, g)

        t = round_robin(
            {
                "relu": lambda fb=fb: fb(torch.relu),
                "ours": lambda fb=fb: fb(lambda v: F.kwta(v, RATIO)),
                "ref": lambda fb=fb: fb(lambda v: F.kwta_reference(v, RATIO)),
            },
            repeats,
            device,
        )
        rows.append(
            f"| {'×'.join(map(str, shape))} | {t['relu'] * 1e3:.1f} | {t['ours'] * 1e3:.1f} | "
            f"{t['ref'] * 1e3:.1f} | {t['ours'] / t['relu']:.2f} | {t['ours'] / t['ref']:.2f} |"
        )
    return rows


def bench_network(batch: int, width: int, repeats: int, device: torch.device) -> list[str]:
    register_act("kwta_reference", ReferenceKWTA)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(device)
    steps: dict[str, Callable[[], object]] = {}
    for name, act, kw in (
        ("relu", "relu", {}),
        ("ours", "kwta", {"ratio": RATIO}),
        ("ref", "kwta_reference", {"ratio": RATIO}),
    ):
        model = models.resnet18(width=width, act=act, act_kwargs=kw).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step(model: nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steps[name] = step
    t = round_robin(steps, repeats, device)
    return [
        "| ResNet-18 train step | ReLU s | ours s | reference s | ours/ReLU | ours/reference |",
        "|---|---:|---:|---:|---:|---:|",
        f"| width {width}, batch {batch} | {t['relu']:.3f} | {t['ours']:.3f} | {t['ref']:.3f} | "
        f"{t['ours'] / t['relu']:.2f} | {t['ours'] / t['ref']:.2f} |",
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-network", action="store_true")
    args = p.parse_args(argv)
    device = default_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    threads = torch.get_num_threads()
    out = [
        f"device: {name} ({device}), torch {torch.__version__}, {threads} threads, "
        f"γ = {RATIO}, median of {args.repeats}",
        "",
        *bench_activation(args.batch, args.width, args.repeats, device),
    ]
    if not args.skip_network:
        out += ["", *bench_network(args.batch, args.width, args.repeats, device)]
    print("\n".join(out))


if __name__ == "__main__":
    main()
