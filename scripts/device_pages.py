"""Every page's computation on the GPU, checked against the CPU, timed, and pushed out of memory.

One command on the accelerator machine (not yet timed there)::

    python3 scripts/device_pages.py OUT_DIR                          # CUDA vs the CPU
    python scripts/device_pages.py OUT_DIR --smoke                   # CPU vs CPU, seconds (tested)

For each model (default: the pages' default pair) and each page action of
:data:`kwta.explorer.actions.PAGE_ACTIONS` — the very library calls the pages make,
with their defaults — it runs the call on ``--device`` and on ``--reference`` with the
same inputs (bundled test image #2; a balanced batch of 32), compares the results'
probes (predictions equal; logits and losses within each probe's stated tolerance;
k-WTA's discontinuity allowed for where stated), re-classifies every adversarial
image on the reference device, and times the call on both (median of ``--repeats``
after a warm-up on the device; the reference's single parity run). Then:

- **out of memory, provoked**: the landscape page's call (50×50) with the CUDA
  allocator capped (``torch.cuda.set_per_process_memory_fraction``) to a third of the
  memory a batch of 256 was measured to need, through
  :func:`kwta.explorer.jobs.retry_on_oom` as the page calls it: the batches tried,
  and whether the result equals the uncapped one. On the CPU the error is simulated
  (said so in the report).
- **load**: ``J`` copies of an action at once in threads (as ``KWTA_MAX_JOBS = J``
  lets the server run them), wall time per wave; the worst wait of the last of
  ``--users`` students who all click together is ``ceil(users / J)`` waves.

Writes ``OUT_DIR/pages.json`` after every row (a run stopped at its deadline — SIGINT —
keeps what it measured, marked ``"interrupted"``) and, at the end, ``OUT_DIR/pages.md``
(tables for the README); exits 1 if a parity check or the OOM recovery failed, or it was
interrupted.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kwta.data import CIFAR10Tensors, cifar10_sample
from kwta.explorer import jobs
from kwta.explorer.actions import (
    LANDSCAPE_BATCH,
    PAGE_ACTIONS,
    ActionInputs,
    PageAction,
    compare_probes,
    cross_check,
    get_action,
    own_prediction,
)
from kwta.utils import default_device, device_name
from kwta.zoo.hub import list_pretrained, load_pretrained
from kwta.zoo.summary import default_pair

SMOKE_ACTIONS = ("attack", "landscape", "patterns")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """``fn()`` and its wall time, the device synchronised on both sides."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


@functools.cache
def _sample() -> CIFAR10Tensors:
    return cifar10_sample("test")  # read once for every model and device


def inputs_on(model: torch.nn.Module, device: torch.device) -> ActionInputs:
    """The shared inputs (bundled test image #2, 32 balanced images) on ``device``."""
    sample = _sample()
    x, y = sample.tensors([2], device=device)
    xs, ys = sample.tensors(sample.balanced_indices(32, seed=0), device=device)
    return ActionInputs(model, x, int(y), xs, ys)


def parity(
    action: PageAction, ref: ActionInputs, dev: ActionInputs, repeats: int
) -> dict[str, Any]:
    """One action on both devices: probes compared, adversarial images cross-classified, times."""
    ref_out, ref_s = timed(lambda: action.run(ref), ref.device)
    dev_out, first_s = timed(lambda: action.run(dev), dev.device)
    times = [timed(lambda: action.run(dev), dev.device)[1] for _ in range(repeats)]
    checks = compare_probes(
        action.probes(ref_out, ref) + own_prediction(dev_out),
        action.probes(dev_out, dev) + cross_check(dev_out, ref.model),
    )
    return {
        "action": action.key,
        "page": action.page,
        "what": action.what,
        "reference_s": ref_s,
        "device_first_s": first_s,
        "device_s": statistics.median(times) if times else first_s,
        "checks": [c.to_dict() for c in checks],
        "passed": all(c.passed for c in checks),
    }


def provoke_oom(inputs: ActionInputs, *, key: str = "landscape50") -> dict[str, Any]:
    """The landscape page's call under a memory cap a third of what its batch needs."""
    action = get_action(key)
    run: Callable[..., Any] = action.run
    device = inputs.device
    simulated = device.type != "cuda"
    base = 0
    if not simulated:
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    expected = run(inputs)  # the reference result and, on CUDA, the memory a batch needs
    tried: list[int] = []
    limit = 0

    def compute(batch_size: int) -> Any:
        tried.append(batch_size)
        if simulated and batch_size > LANDSCAPE_BATCH // 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated on the CPU)")
        return run(inputs, batch_size=batch_size)

    if not simulated:
        need = torch.cuda.max_memory_allocated(device) - base
        limit = base + need // 3
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(limit / total, device)
    error = None
    try:
        got = jobs.retry_on_oom(compute, LANDSCAPE_BATCH, min_batch=8)
        same = bool(torch.allclose(got.loss.cpu(), expected.loss.cpu(), rtol=1e-4, atol=1e-4))
    except jobs.JobError as err:
        got, same, error = None, False, str(err)
    finally:
        if not simulated:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()
    return {
        "what": f"{action.what}, first batch {LANDSCAPE_BATCH}",
        "simulated": simulated,
        "memory_cap_bytes": limit,
        "batches_tried": tried,
        "recovered": got is not None and len(tried) > 1,
        "same_result": same,
        "error": error,
    }


def wave_time(action: PageAction, inputs: ActionInputs, concurrent: int) -> float:
    """Wall time of ``concurrent`` runs of ``action`` started together in threads."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            action.run(inputs)
        except BaseException as err:  # reported below, not swallowed
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(concurrent)]
    _sync(inputs.device)
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _sync(inputs.device)
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def load_model(
    action: PageAction, inputs: ActionInputs, *, users: int, max_jobs: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Measured waves and the modelled worst wait of ``users`` simultaneous clicks."""
    rows = []
    for j in max_jobs:
        wave = wave_time(action, inputs, j)
        rows.append(
            {
                "action": action.key,
                "what": action.what,
                "max_jobs": j,
                "wave_s": wave,
                "per_job_s": wave / j,
                "users": users,
                "worst_wait_s": math.ceil(users / j) * wave,
            }
        )
    return rows


def markdown(result: dict[str, Any]) -> str:
    """The report's tables."""
    dev, ref = result["device"], result["reference"]
    lines = [
        f"device: {dev} · reference: {ref} · torch {result['torch']}",
        "",
        f"| model | page: action | {ref} s | {dev} s | speed-up | parity |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in result["parity"]:
        fails = [c["name"] for c in r["checks"] if not c["passed"]]
        worst = min((c["agree"] for c in r["checks"]), default=1.0)
        verdict = "pass" if r["passed"] else "FAIL: " + ", ".join(fails)
        lines.append(
            f"| {r['model']} | {r['page']}: {r['what']} | {r['reference_s']:.2f} | "
            f"{r['device_s']:.3f} | {r['reference_s'] / max(r['device_s'], 1e-9):.1f}× | "
            f"{verdict} (least agreement {worst:.3f}) |"
        )
    o = result["oom"]
    lines += [
        "",
        f"Out of memory ({'simulated' if o['simulated'] else 'real, allocator capped'}): "
        f"{o['what']}: batches tried {o['batches_tried']}, recovered {o['recovered']}, "
        f"same result {o['same_result']}" + (f", error: {o['error']}" if o["error"] else ""),
        "",
        "| action | KWTA_MAX_JOBS | s per wave | s per job | worst wait of "
        f"{result['users']} users |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["load"]:
        lines.append(
            f"| {r['what']} ({r['model']}) | {r['max_jobs']} | {r['wave_s']:.2f} | "
            f"{r['per_job_s']:.2f} | {r['worst_wait_s']:.1f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", type=Path, help="folder for pages.json and pages.md")
    p.add_argument("--device", default=None, help="device to check (default: cuda if available)")
    p.add_argument("--reference", default="cpu", help="device to compare with (default: cpu)")
    p.add_argument(
        "--models", default=None, help="comma-separated pretrained names (default: the pages' pair)"
    )
    p.add_argument("--actions", default=None, help="comma-separated action keys (default: all)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--users", type=int, default=30, help="students clicking at once, for the load model"
    )
    p.add_argument("--max-jobs", default="1,2,4", help="KWTA_MAX_JOBS values to measure")
    p.add_argument("--load-actions", default="attack,landscape50")
    p.add_argument(
        "--smoke", action="store_true", help=f"CPU vs CPU, actions {SMOKE_ACTIONS}, 1 repeat"
    )
    args = p.parse_args(argv)
    if args.smoke:
        args.device = args.device or "cpu"
        args.actions = args.actions or ",".join(SMOKE_ACTIONS)
        args.repeats, args.max_jobs, args.users = 1, "1,2", 4
        args.load_actions = "attack"
    device, reference = default_device(args.device), torch.device(args.reference)
    names = (
        args.models.split(",") if args.models else [n for n in default_pair(list_pretrained()) if n]
    )
    if not names:
        raise SystemExit("no pretrained models: train some first (see docs/zoo.md)")
    actions = (
        [get_action(k) for k in args.actions.split(",")] if args.actions else list(PAGE_ACTIONS)
    )
    max_jobs = tuple(int(v) for v in args.max_jobs.split(","))
    result: dict[str, Any] = {
        "device": device_name(device),
        "reference": device_name(reference),
        "torch": torch.__version__,
        "models": names,
        "users": args.users,
        "parity": [],
        "load": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every row: a run cut at its deadline keeps what it measured
        (args.out / "pages.json").write_text(json.dumps(result, indent=1) + "\n")

    done_global: set[str] = set()
    try:
        for name in names:
            ref_in = inputs_on(load_pretrained(name, reference), reference)
            dev_in = inputs_on(load_pretrained(name, device), device)
            with torch.no_grad():  # first calls (kernel compilation, CUDA context) stay untimed
                ref_in.model(ref_in.xs)
                dev_in.model(dev_in.xs)
            for action in actions:
                if not action.per_model and action.key in done_global:
                    continue
                if not action.applies_to(ref_in.model):
                    continue
                done_global.add(action.key)
                row = parity(action, ref_in, dev_in, max(0, args.repeats))
                row["model"] = name if action.per_model else "MLP"
                result["parity"].append(row)
                save()
                print(
                    f"{row['model']}: {action.key}: {'pass' if row['passed'] else 'FAIL'} "
                    f"({row['reference_s']:.2f} s / {row['device_s']:.3f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            for key in args.load_actions.split(","):
                for r in load_model(get_action(key), dev_in, users=args.users, max_jobs=max_jobs):
                    result["load"].append({**r, "model": name})
                    save()
        oom_key = "landscape" if args.smoke else "landscape50"
        last = inputs_on(load_pretrained(names[-1], device), device)
        result["oom"] = provoke_oom(last, key=oom_key)
    except KeyboardInterrupt:  # the deadline (SIGINT from device_gpu.sh): keep the rows done
        result["interrupted"] = True
        save()
        print("interrupted: pages.json holds the rows measured so far", file=sys.stderr)
        return 1
    ok = all(r["passed"] for r in result["parity"]) and result["oom"]["same_result"]
    result["passed"] = ok
    save()
    table = markdown(result)
    (args.out / "pages.md").write_text(table)
    print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
