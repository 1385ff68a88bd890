"""`kwta doctor`: the self-check, with GPU failures simulated on this CPU machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kwta import doctor

REPO = Path(__file__).resolve().parents[1]


def test_cpu_machine_is_healthy() -> None:
    checks = doctor.check_gpu(smi=lambda: None, cuda_available=lambda: False,
                              device_nodes=lambda: False)  # fmt: skip
    assert [c.status for c in checks] == ["ok", "ok"] and "CPU" in checks[1].detail


def test_driver_too_old_for_the_cuda_build() -> None:
    checks = doctor.check_gpu(
        smi=lambda: ("NVIDIA A100-SXM4-40GB", "535.183.01"),
        cuda_available=lambda: False,
        cuda_build="13.0",
        device_nodes=lambda: True,
    )
    gpu = checks[-1]
    assert gpu.status == "fail" and "535.183.01" in gpu.detail and "580" in gpu.detail
    assert "TORCH_CUDA=cu126" in gpu.advice
    status, summary = doctor.verdict(checks)
    assert status == "fail" and "driver 535.183.01 is older" in summary


def test_gpu_visible_but_not_passed_or_not_initialised() -> None:
    no_pass = doctor.check_gpu(smi=lambda: None, cuda_available=lambda: False,
                               cuda_build="13.0", device_nodes=lambda: True)  # fmt: skip
    assert no_pass[-1].status == "fail" and "--gpus all" in no_pass[-1].advice
    new_driver = doctor.check_gpu(smi=lambda: ("NVIDIA H100", "580.65.06"),
                                  cuda_available=lambda: False, cuda_build="13.0")  # fmt: skip
    assert new_driver[-1].status == "fail" and "cannot initialise CUDA" in new_driver[-1].detail
    cpu_build = doctor.check_gpu(smi=lambda: ("NVIDIA H100", "580.65.06"),
                                 cuda_available=lambda: False, cuda_build="")  # fmt: skip
    assert "CPU-only build" in cpu_build[-1].detail


def test_models_checked_by_sha256(tmp_path: Path) -> None:
    for f in (
        "relu-nat.json",
        "relu-nat.safetensors",
        "kwta0.1-nat.json",
        "kwta0.1-nat.safetensors",
    ):
        shutil.copy(REPO / "pretrained" / f, tmp_path / f)
    assert doctor.check_models(tmp_path)[0].status == "ok"
    data = bytearray((tmp_path / "kwta0.1-nat.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one flipped byte
    (tmp_path / "kwta0.1-nat.safetensors").write_bytes(bytes(data))
    bad = doctor.check_models(tmp_path)[0]
    assert bad.status == "fail" and "kwta0.1-nat" in bad.detail and "1 of 2 load" in bad.detail
    assert doctor.check_models(tmp_path / "empty")[0].status == "fail"


def test_data_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KWTA_DATA", "/no/such/cifar")
    assert doctor.check_data()[0].status == "fail"
    monkeypatch.delenv("KWTA_DATA")
    assert "bundled sample" in doctor.check_data()[0].detail
    monkeypatch.setenv("KWTA_MAX_JOBS", "3")
    assert "3 heavy job(s) at once ($KWTA_MAX_JOBS)" in doctor.check_jobs()[0].detail
    text = doctor.format_report([doctor.Check("x", "fail", "broken", "fix it")])
    assert text == "[FAIL] x: broken\n       → fix it"


def test_cli_doctor() -> None:
    proc = subprocess.run([sys.executable, "-m", "kwta", "doctor"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("PyTorch", "GPU", "models", "data", "job queue", "k-WTA kernel",
                 "k-WTA CUDA kernel"):  # fmt: skip
        assert f"] {name}: " in proc.stdout


def test_cuda_kernel_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Triton needs a C compiler for its launcher: without one the check warns."""
    pytest.importorskip("triton")
    assert doctor.check_cuda_kernel()[0].status == "ok"
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(doctor.shutil, "which", lambda _name: None)
    warn = doctor.check_cuda_kernel()[0]
    assert warn.status == "warn" and "C compiler" in warn.detail and "gcc" in warn.advice
    monkeypatch.setenv("KWTA_TRITON", "0")
    assert "KWTA_TRITON=0" in doctor.check_cuda_kernel()[0].detail
