"""Speed of k-WTA against ReLU and against the authors' formulation, side by side in one run.

Usage:
    python benchmarks/bench_kwta.py [--device cpu|cuda] [--widths 16,32,64] [--repeats 5]
        [--clock wall|cpu] [--threads N] [--rows activation,train,eval]

Prints Markdown tables of median times and ratios, each with an fp32-NCHW row
and a fast-path row (channels-last + the autocast precision ``"auto"`` picks:
bf16 on CUDA and on CPUs with native bf16, else fp32; see kwta.nn.precision):

1. the activation alone, forward+backward, at ResNet-18's four feature-map
   shapes (batch 128, width 16 → 16/32/64/128 channels): ReLU, ours
   (kwta.nn.functional.kwta, γ = 0.1, default backend: the compiled kernel on the CPU,
   the Triton kernel on CUDA), ours on the PyTorch path, and the reference
   (sorted topk + repeat + >= + multiply, the authors' code);
2. one whole ResNet-18 SGD training step at each width (batch 128);
3. an eval forward at batch 2 500 (the loss landscape's batch), width 16.

Variants are timed round-robin (one repeat of each in turn) so that drift of
the machine affects them alike. ``--clock cpu`` times the thread's CPU time
(with one thread), which a busy machine disturbs far less than wall time.
Timings are not tests; see README for results.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from kwta import models
from kwta.nn import functional as F
from kwta.nn import native
from kwta.nn.native import triton_kwta
from kwta.nn.precision import autocast, channels_last_safe, resolve_precision
from kwta.nn.registry import register_act
from kwta.utils import default_device

RATIO = 0.1
BATCH = 128
EVAL_BATCH = 2500


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
    fns: dict[str, Callable[[], object]], repeats: int, device: torch.device, clock: str
) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds."""
    now = time.thread_time if clock == "cpu" else time.perf_counter
    for fn in fns.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = now()
            fn()
            _sync(device)
            times[name].append(now() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _paths(device: torch.device) -> list[tuple[str, bool, str]]:
    """(label, channels_last, resolved precision) of the two rows of every table."""
    fast = resolve_precision("auto", device)
    label = "fast path (channels-last" + (f", {fast} autocast)" if fast != "off" else ", fp32)")
    return [("fp32 NCHW", False, "off"), (label, True, fast)]


def bench_activation(width: int, repeats: int, device: torch.device, clock: str) -> list[str]:
    rows = [
        "| path | feature map (B×C×H×W) | ReLU ms | ours ms | ours, PyTorch path ms | "
        "reference ms | ours/ReLU | ours/reference |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, cl, amp in _paths(device):
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp, torch.float32)
        for i, hw in enumerate((32, 16, 8, 4)):
            shape = (BATCH, width * 2**i, hw, hw)
            fmt = torch.channels_last if cl else torch.contiguous_format
            x = torch.randn(shape, device=device).to(dtype).contiguous(memory_format=fmt)
            g = torch.randn(shape, device=device).to(dtype).contiguous(memory_format=fmt)

            def fb(act: Callable[[Tensor], Tensor], x: Tensor = x, g: Tensor = g) -> None:
                xx = x.detach().requires_grad_(True)
                torch.autograd.grad(act(xx), xx, g)

            t = round_robin(
                {
                    "relu": lambda fb=fb: fb(torch.relu),
                    "ours": lambda fb=fb: fb(lambda v: F.kwta(v, RATIO)),
                    "torch": lambda fb=fb: fb(lambda v: F.kwta(v, RATIO, backend="torch")),
                    "ref": lambda fb=fb: fb(lambda v: F.kwta_reference(v, RATIO)),
                },
                repeats,
                device,
                clock,
            )
            rows.append(
                f"| {label} | {'×'.join(map(str, shape))} | {t['relu'] * 1e3:.2f} | "
                f"{t['ours'] * 1e3:.2f} | {t['torch'] * 1e3:.2f} | {t['ref'] * 1e3:.2f} | "
                f"{t['ours'] / t['relu']:.2f} | "
                f"{t['ours'] / t['ref']:.2f} |"
            )
    return rows


def _model(act: str, kw: dict[str, Any], width: int, device: torch.device, cl: bool) -> nn.Module:
    model = models.resnet18(width=width, act=act, act_kwargs=kw).to(device)
    if cl and channels_last_safe(model, device):
        model = model.to(memory_format=torch.channels_last)
    return model


VARIANTS = (("relu", "relu", {}), ("ours", "kwta", {"ratio": RATIO}))
REFERENCE = ("ref", "kwta_reference", {"ratio": RATIO})


def bench_train(
    widths: list[int], repeats: int, device: torch.device, clock: str, reference: bool
) -> list[str]:
    register_act("kwta_reference", ReferenceKWTA)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(BATCH, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (BATCH,), generator=gen).to(device)
    rows = [
        "| path | ResNet-18 train step | ReLU s | ours s | reference s | ours/ReLU | "
        "ours/reference |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, cl, amp in _paths(device):
        x = x0.contiguous(memory_format=torch.channels_last) if cl else x0
        for width in widths:
            steps: dict[str, Callable[[], object]] = {}
            variants = (*VARIANTS, REFERENCE) if reference else VARIANTS
            for name, act, kw in variants:
                model = _model(act, kw, width, device, cl).train()
                opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

                def step(
                    model: nn.Module = model,
                    opt: torch.optim.Optimizer = opt,
                    x: Tensor = x,
                    amp: str = amp,
                ) -> None:
                    with autocast(device, amp):
                        out = model(x)
                    loss = nn.functional.cross_entropy(out.float(), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                steps[name] = step
            t = round_robin(steps, repeats, device, clock)
            ref = (
                f"{t['ref']:.3f} | {t['ours'] / t['relu']:.2f} | {t['ours'] / t['ref']:.2f}"
                if reference
                else f"– | {t['ours'] / t['relu']:.2f} | –"
            )
            rows.append(
                f"| {label} | width {width}, batch {BATCH} | {t['relu']:.3f} | "
                f"{t['ours']:.3f} | {ref} |"
            )
    return rows


def bench_eval(width: int, repeats: int, device: torch.device, clock: str) -> list[str]:
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(EVAL_BATCH, 3, 32, 32, generator=gen).to(device)
    rows = [
        f"| path | eval forward, batch {EVAL_BATCH}, width {width} | ReLU s | ours s | ours/ReLU |",
        "|---|---|---:|---:|---:|",
    ]
    for label, cl, amp in _paths(device):
        x = x0.contiguous(memory_format=torch.channels_last) if cl else x0
        fwd: dict[str, Callable[[], object]] = {}
        for name, act, kw in VARIANTS:
            model = _model(act, kw, width, device, cl).eval()

            def run(model: nn.Module = model, x: Tensor = x, amp: str = amp) -> None:
                with torch.no_grad(), autocast(device, amp):
                    model(x)

            fwd[name] = run
        t = round_robin(fwd, repeats, device, clock)
        rows.append(
            f"| {label} | | {t['relu']:.3f} | {t['ours']:.3f} | {t['ours'] / t['relu']:.2f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--widths", default="16,32,64", help="train-step widths (16,32,64)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--rows", default="activation,train,eval", help="which tables")
    p.add_argument("--no-reference", action="store_true", help="skip the authors' formulation")
    args = p.parse_args(argv)
    device = default_device(args.device)
    if args.clock == "cpu":
        args.threads = 1  # the thread's CPU time is the run's only when it is the only thread
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = set(args.rows.split(","))
    widths = [int(w) for w in args.widths.split(",")]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    if device.type == "cuda":
        backend = "Triton kernel" if triton_kwta.available() else "PyTorch path"
    else:
        backend = "compiled CPU kernel" if native.cpu_kernel() is not None else "PyTorch path"
    out = [
        f"device: {name} ({device}), torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, k-WTA backend ('ours'): {backend}, γ = {RATIO}, median of {args.repeats}, "
        f"{args.clock} clock",
    ]
    with contextlib.suppress(KeyboardInterrupt):
        if "activation" in rows:
            out += ["", *bench_activation(16, args.repeats, device, args.clock)]
            print("\n".join(out), flush=True)
            out = []
        if "train" in rows:
            out += [
                "",
                *bench_train(widths, args.repeats, device, args.clock, not args.no_reference),
            ]
            print("\n".join(out), flush=True)
            out = []
        if "eval" in rows:
            out += ["", *bench_eval(16, args.repeats, device, args.clock)]
    print("\n".join(out), flush=True)


if __name__ == "__main__":
    main()
