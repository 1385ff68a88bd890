"""A start-up self-check of what the explorer runs on: ``python -m kwta doctor``.

The app shows its verdict in the sidebar and logs the full report when the
server starts, so that "the GPU is there but PyTorch cannot use it" is found
before a class is waiting, not by reading the sidebar's "CPU" line.

Checks: PyTorch and its CUDA build; a GPU visible to the driver but unusable by
PyTorch (driver too old for this build, or no device passed to the container);
free GPU memory; the pretrained models and their sha256; the data source; the
job queue's limits; the optional compiled k-WTA kernel's toolchain.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

__all__ = ["MIN_DRIVER", "Check", "format_report", "run_checks", "verdict"]

Status = Literal["ok", "warn", "fail"]

#: Oldest NVIDIA driver (major version, Linux) each CUDA runtime needs, from NVIDIA's
#: CUDA toolkit release notes (minor-version compatibility within a major needs 525+
#: for CUDA 12.x and 580+ for 13.x; these are the versions the toolkits ship with).
MIN_DRIVER: dict[str, int] = {
    "11.8": 520,
    "12.1": 530,
    "12.4": 550,
    "12.6": 560,
    "12.8": 570,
    "12.9": 575,
    "13.0": 580,
}


@dataclass(frozen=True)
class Check:
    """One line of the report.

    Attributes:
        name: What was checked.
        status: ``"ok"``, ``"warn"`` (works, but worse than it could) or ``"fail"``.
        detail: What was found.
        advice: What to do about a warning or failure.
    """

    name: str
    status: Status
    detail: str
    advice: str = ""


def _nvidia_smi() -> tuple[str, str] | None:
    """``(gpu name, driver version)`` from ``nvidia-smi``, or ``None`` when there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not out or "," not in out:
        return None
    name, driver = (s.strip() for s in out.splitlines()[0].split(",", 1))
    return name, driver


def _device_nodes() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


def check_gpu(
    *,
    smi: Callable[[], tuple[str, str] | None] = _nvidia_smi,
    cuda_available: Callable[[], bool] = torch.cuda.is_available,
    cuda_build: str | None = None,
    device_nodes: Callable[[], bool] = _device_nodes,
) -> list[Check]:
    """The GPU checks; the callables are injectable so that failures can be simulated."""
    build = cuda_build if cuda_build is not None else (torch.version.cuda or "")
    checks = [
        Check(
            "PyTorch",
            "ok",
            f"torch {torch.__version__}"
            + (f", built for CUDA {build}" if build else ", CPU build"),
        )
    ]
    seen = smi()
    usable = cuda_available()
    need = MIN_DRIVER.get(".".join(build.split(".")[:2])) if build else None
    if usable:
        free, total = torch.cuda.mem_get_info()
        name = torch.cuda.get_device_name(0)
        checks.append(Check("GPU", "ok", f"{name}, usable by PyTorch"))
        status: Status = "ok" if free > 2 * 2**30 else "warn"
        checks.append(
            Check(
                "GPU memory",
                status,
                f"{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB",
                ""
                if status == "ok"
                else "another process holds the GPU's memory; "
                "large landscapes will retry at smaller batches",
            )
        )
        return checks
    if seen is not None:
        name, driver = seen
        lead = re.match(r"\d+", driver)
        major = int(lead.group()) if lead else 0
        if not build:
            advice = "install a CUDA build of PyTorch (see docs/deploy.md)"
            why = "this PyTorch is a CPU-only build"
        elif need is not None and major < need:
            why = f"driver {driver} is older than CUDA {build} needs (driver {need} or newer)"
            advice = (
                f"update the NVIDIA driver to {need}+, or build the image for your driver: "
                "docker build --build-arg TORCH_CUDA=cu126 (driver 560+) or cu128 (570+)"
            )
        else:
            why = "the driver sees it, but PyTorch cannot initialise CUDA"
            advice = "check `nvidia-smi` and that this container was started with --gpus all"
        checks.append(Check("GPU", "fail", f"{name} visible (driver {driver}), but {why}", advice))
        return checks
    if device_nodes():
        checks.append(
            Check(
                "GPU",
                "fail",
                "NVIDIA device files exist but nvidia-smi and CUDA do not work",
                "start the container with --gpus all (NVIDIA Container Toolkit installed)",
            )
        )
        return checks
    checks.append(
        Check(
            "GPU",
            "ok",
            "none on this machine (no nvidia-smi, no NVIDIA device files): the CPU computes",
            "on a GPU box, start the container with --gpus all",
        )
    )
    return checks


def check_models(directory: str | os.PathLike[str] | None = None) -> list[Check]:
    """Every pretrained model's weights against its card's sha256."""
    from kwta.zoo.hub import list_pretrained, pretrained_dir, sha256_of

    d = Path(directory) if directory is not None else pretrained_dir()
    cards = list_pretrained(d)
    if not cards:
        return [
            Check(
                "models",
                "fail",
                "no pretrained models found",
                "train some (python -m kwta zoo build) or set $KWTA_PRETRAINED",
            )
        ]
    bad = []
    for name, card in sorted(cards.items()):
        weights = d / Path(str(card.get("weights", ""))).name
        if not weights.is_file() or sha256_of(weights) != card.get("sha256"):
            bad.append(name)
    if bad:
        return [
            Check(
                "models",
                "fail",
                f"{len(cards) - len(bad)} of {len(cards)} load; sha256 mismatch or missing "
                f"weights: {', '.join(bad)}",
                "re-copy those files from the repository (they were changed or truncated)",
            )
        ]
    return [Check("models", "ok", f"{len(cards)} models, sha256 verified: {', '.join(cards)}")]


def check_data() -> list[Check]:
    """Which CIFAR-10 source the app and CLI would use (without decoding it)."""
    env = os.environ.get("KWTA_DATA")
    if env:
        if Path(env).expanduser().exists():
            return [Check("data", "ok", f"$KWTA_DATA names {Path(env).name}")]
        return [
            Check(
                "data",
                "fail",
                "$KWTA_DATA names a path that does not exist",
                "fix $KWTA_DATA or unset it to use the bundled sample",
            )
        ]
    return [Check("data", "ok", "bundled sample of 1 000 test images ($KWTA_DATA not set)")]


def check_jobs() -> list[Check]:
    from kwta.explorer.jobs import ENV_MAX_JOBS, default_max_jobs

    n = default_max_jobs()
    src = f"${ENV_MAX_JOBS}" if os.environ.get(ENV_MAX_JOBS) else "default"
    return [Check("job queue", "ok", f"{n} heavy job(s) at once ({src})")]


def check_kernel() -> list[Check]:
    from kwta.nn import native

    if not native.native_enabled():
        return [Check("k-WTA kernel", "ok", "PyTorch path ($KWTA_NATIVE=0)")]
    have = [t for t in ("c++", "ninja") if shutil.which(t)]
    if len(have) == 2:
        return [Check("k-WTA kernel", "ok", "C++ toolchain found: the compiled CPU kernel builds")]
    return [
        Check(
            "k-WTA kernel",
            "ok",
            "no C++ toolchain: k-WTA takes the PyTorch path on the CPU (same results, slower)",
        )
    ]


def check_cuda_kernel() -> list[Check]:
    """Whether k-WTA on CUDA takes the Triton kernel (it needs Triton and a C compiler, with
    which Triton builds its launcher) or the PyTorch path."""
    import importlib.util

    name = "k-WTA CUDA kernel"
    if importlib.util.find_spec("triton") is None:
        return [Check(name, "ok", "no Triton in this PyTorch build: the PyTorch path on CUDA")]
    if os.environ.get("KWTA_TRITON", "1").strip().lower() in ("0", "false", "off", "no"):
        return [Check(name, "ok", "PyTorch path ($KWTA_TRITON=0)")]
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return [
            Check(
                name,
                "warn",
                "Triton found but no C compiler: on a GPU, Triton cannot build its launcher",
                "install gcc (the Docker image has it), or set KWTA_TRITON=0",
            )
        ]
    from importlib.metadata import version

    return [Check(name, "ok", f"Triton {version('triton')} and a C compiler: used on CUDA")]


def run_checks(directory: str | os.PathLike[str] | None = None) -> list[Check]:
    """All checks, in report order."""
    return [
        *check_gpu(),
        *check_models(directory),
        *check_data(),
        *check_jobs(),
        *check_kernel(),
        *check_cuda_kernel(),
    ]


def verdict(checks: list[Check]) -> tuple[Status, str]:
    """The worst status and a one-line summary for the sidebar."""
    fails = [c for c in checks if c.status == "fail"]
    warns = [c for c in checks if c.status == "warn"]
    if fails:
        return "fail", "; ".join(f"{c.name}: {c.detail}" for c in fails)
    if warns:
        return "warn", "; ".join(f"{c.name}: {c.detail}" for c in warns)
    return "ok", "all checks passed"


def format_report(checks: list[Check]) -> str:
    """The report as plain text, one check a line, advice indented below."""
    mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for c in checks:
        lines.append(f"[{mark[c.status]}] {c.name}: {c.detail}")
        if c.advice:
            lines.append(f"       → {c.advice}")
    return "\n".join(lines)
