"""The Triton k-WTA kernel's launch settings, measured: block size × warps at the zoo's shapes.

Usage:
    python benchmarks/tune_triton.py [--widths 16,64] [--batch 128] [--repeats 20]

For each ResNet-18 feature map (width 16 and 64: 16-512 channels, 32×32 down to 4×4) in
NCHW and channels-last, times the forward of :func:`kwta.nn.native.triton_kwta.kwta_forward`
(γ = 0.1, fp32) at every block size and warp count, checks each result equals the default
launch's bit for bit, and prints a Markdown table: the median ms per setting, the best
setting and the default's cost relative to it. ``scripts/device_gpu.sh`` runs it on the GPU
(the default, :data:`~kwta.nn.native.triton_kwta.BLOCK`, was chosen without one).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from kwta.nn import functional as F
from kwta.nn.native import triton_kwta

RATIO = 0.1
BLOCKS = (1024, 2048, 4096, 8192)
WARPS = (4, 8, 16)


def _time(fn, repeats: int, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    fn()  # compile / warm up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--widths", default="16,64")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--blocks", default=",".join(map(str, BLOCKS)))
    p.add_argument("--warps", default=",".join(map(str, WARPS)))
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not triton_kwta.available() or (device.type == "cpu" and not triton_kwta.interpreting()):
        raise SystemExit("needs a GPU (or TRITON_INTERPRET=1 on the CPU) and Triton")
    blocks = [int(b) for b in args.blocks.split(",")]
    warps = [int(w) for w in args.warps.split(",")]
    settings = list(itertools.product(blocks, warps))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (interpreter)"
    print(f"device: {name}, torch {torch.__version__}, batch {args.batch}, γ = {RATIO}, fp32, "
          f"median of {args.repeats}; default block {triton_kwta.BLOCK}")  # fmt: skip
    print()
    print("| feature map | layout | " + " | ".join(f"b{b}/w{w}" for b, w in settings)
          + " | best | default/best |")  # fmt: skip
    print("|---|---|" + "---:|" * (len(settings) + 2))
    for width in (int(w) for w in args.widths.split(",")):
        for i, hw in enumerate((32, 16, 8, 4)):
            shape = (args.batch, width * 2**i, hw, hw)
            for cl in (False, True):
                x = torch.randn(shape, device=device)
                if cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                k = F.k_from_ratio(RATIO, x[0].numel())
                want = triton_kwta.kwta_forward(x, k, cl)[1]
                cells = []
                for b, w in settings:
                    got = triton_kwta.kwta_forward(x, k, cl, block=b, num_warps=w)[1]
                    assert torch.equal(got, want), (shape, cl, b, w)
                    cells.append(_time(lambda b=b, w=w, x=x, k=k, cl=cl: triton_kwta.kwta_forward(
                        x, k, cl, block=b, num_warps=w), args.repeats, device))  # fmt: skip
                default = _time(lambda x=x, k=k, cl=cl: triton_kwta.kwta_forward(x, k, cl),
                                args.repeats, device)  # fmt: skip
                best = min(range(len(cells)), key=cells.__getitem__)
                print(f"| {'×'.join(map(str, shape))} | {'CL' if cl else 'NCHW'} | "
                      + " | ".join(f"{c * 1e3:.3f}" for c in cells)
                      + f" | b{settings[best][0]}/w{settings[best][1]} | "
                      f"{default / cells[best]:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
