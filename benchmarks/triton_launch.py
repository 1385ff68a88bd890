"""The Triton k-WTA kernel's first launch (compilation included) against the next, per dtype.

Usage:
    python benchmarks/triton_launch.py [--device cuda] [--shape 256,64,16,16]

Triton compiles a kernel the first time it runs with a new set of constants (here: each
dtype, since bf16 and fp16 select on 16-bit keys in two passes and fp32 on 32-bit keys in
four). A page's first k-WTA forward on a fresh server waits for that; this prints it as a
Markdown table, beside the time of the next call and the result's check against the
PyTorch path. ``scripts/device_gpu.sh`` runs it on the GPU; ``--device cpu`` runs it through
Triton's interpreter (``TRITON_INTERPRET=1``), where "compilation" is the kernel's loading.
"""

from __future__ import annotations

import argparse
import time

import torch

from kwta.nn import functional as F
from kwta.nn.native import triton_kwta

RATIO = 0.1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shape", default="256,64,16,16", help="input shape (B,C,H,W)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    shape = tuple(int(v) for v in args.shape.split(","))
    print(
        f"Triton k-WTA, first launch vs the next, {'×'.join(map(str, shape))}, γ = {RATIO}, "
        f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU interpreter'}"
    )
    print()
    print("| dtype | key bits (passes) | first call s | next call ms | equals PyTorch path |")
    print("|---|---:|---:|---:|---|")
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x = torch.randn(shape, generator=gen).to(device, dtype)
        _sync(device)
        t = time.perf_counter()
        y = F.kwta(x, RATIO, backend="triton")
        _sync(device)
        first = time.perf_counter() - t
        t = time.perf_counter()
        y = F.kwta(x, RATIO, backend="triton")
        _sync(device)
        nxt = (time.perf_counter() - t) * 1000
        same = torch.equal(y, F.kwta(x, RATIO, backend="torch"))
        bits = triton_kwta.key_bits_of(dtype)
        name = str(dtype).removeprefix("torch.")
        print(
            f"| {name} | {bits} ({bits // triton_kwta.RADIX_BITS}) | {first:.2f} | "
            f"{nxt:.2f} | {'yes' if same else 'NO'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
