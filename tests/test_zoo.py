"""`kwta zoo build`: the whole zoo from one command, resumable, sized to a time budget; the
GPU script in smoke mode; torch.hub loading. Real (bundled) CIFAR-10 images throughout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from kwta.cli import main
from kwta.data import CIFAR10Tensors
from kwta.training.loop import train
from kwta.training.schedules import epoch_plan
from kwta.training.zoo import (
    ZOO,
    apply_threads,
    build,
    default_work_dir,
    measure_pass_seconds,
    recipe_config,
    size_epochs,
    tier_models,
)
from kwta.zoo.hub import list_pretrained, load_pretrained, sha256_of

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    "width": 8,
    "epochs": 1,
    "subset": 128,
    "eval_n": 10,
    "clean_n": 100,
    "attacks": ("pgd",),
    "restarts": 1,
}


@pytest.fixture(autouse=True)
def _bundled_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KWTA_DATA", raising=False)  # the bundled real images


def test_recipes_follow_the_paper_structure() -> None:
    assert tier_models("cpu") == [
        "relu-nat", "kwta0.2-nat", "kwta0.1-nat", "relu-at", "kwta0.1-at", "lwta0.1-nat"
    ]  # fmt: skip
    # the paper tier: the same structure at width 32, each parent in its own tier
    assert tier_models("paper") == [f"{n}-w32" for n in tier_models("cpu")[:5]]
    for name in tier_models("paper"):
        recipe = ZOO[name]
        assert recipe_config(recipe, work_dir="w", out_dir="o").width == 32
        assert recipe.parent is None or ZOO[recipe.parent].tier == "paper"
    assert ZOO["kwta0.1-nat-w32"].incremental_from == 0.2
    assert ZOO["kwta0.1-at-w32"].parent == "kwta0.1-nat-w32"
    with pytest.raises(ValueError, match="unknown zoo tier"):
        tier_models("gpu")
    # Fig. 6's direct k-WTA-0.1: built only on request, with the incremental pair's passes
    assert [n for n, r in ZOO.items() if r.optional] == ["kwta0.1-direct"]
    passes = {
        n: len(epoch_plan(recipe_config(ZOO[n], work_dir="w", out_dir="o")))
        for n in ("kwta0.2-nat", "kwta0.1-nat", "kwta0.1-direct")
    }
    assert passes["kwta0.1-direct"] == passes["kwta0.2-nat"] + passes["kwta0.1-nat"] == 33
    lwta = recipe_config(ZOO["lwta0.1-nat"], work_dir="w", out_dir="o")
    assert lwta.arch_kwargs == {"width": 16, "act": "lwta", "act_kwargs": {"group_size": 10}}
    assert ZOO["kwta0.1-nat"].parent == "kwta0.2-nat"  # incremental fine-tuning, Sec. 2.2
    assert ZOO["kwta0.1-nat"].incremental_from == 0.2 and ZOO["kwta0.1-nat"].ratio == 0.1
    assert {ZOO[n].method for n in ("relu-at", "kwta0.1-at")} == {"fgsm"}
    order = list(ZOO)
    assert all(order.index(r.parent) < order.index(r.name) for r in ZOO.values() if r.parent)


@pytest.mark.slow
def test_build_trains_evaluates_and_skips_what_is_done(tmp_path: Path) -> None:
    out, work = tmp_path / "pretrained", tmp_path / "runs"
    names = ["relu-nat", "kwta0.2-nat", "kwta0.1-nat"]
    seen: list[str] = []
    cards = build(names, out_dir=out, work_dir=work, on_model=lambda n, c: seen.append(n), **SMALL)
    assert seen == names and set(list_pretrained(out)) == set(names)
    for name, card in cards.items():
        assert card["zoo"]["fingerprint"] and card["zoo"]["recipe"]["name"] == name
        assert "width 8" in card["status"] and "Not the paper's" in card["status"]
        m = card["metrics"]
        assert m["clean_n"] == 100 and m["robust_n"] == 10 and "pgd" in m["robust_accuracy"]
        assert (
            m["pgd_restarts"]["starts"] == 2 and len(m["pgd_restarts"]["per_start_accuracy"]) == 2
        )
        assert m["pgd_restarts"]["accuracy"] <= m["robust_accuracy"]["pgd"]
        text = (out / f"{name}.json").read_text()
        assert str(tmp_path) not in text and "/work/" not in text  # no machine paths
        model = load_pretrained(name, directory=out)
        assert not model.training
    fine = cards["kwta0.1-nat"]["training"]
    assert fine["init_from"] == {
        "file": "kwta0.2-nat.safetensors",
        "sha256": cards["kwta0.2-nat"]["sha256"],
    }
    ratios = [r["ratio"] for r in fine["schedule"]["ratio"]]
    assert ratios[0] == 0.2 and ratios[-1] == 0.1 and ratios == sorted(ratios, reverse=True)
    assert cards["kwta0.1-nat"]["arch_kwargs"]["act_kwargs"] == {"ratio": 0.1}

    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = build(names, out_dir=out, work_dir=work, **SMALL)  # nothing left to do
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert {n: c["sha256"] for n, c in again.items()} == {n: c["sha256"] for n, c in cards.items()}


def test_build_resumes_an_interrupted_run(tmp_path: Path, train_sample: CIFAR10Tensors) -> None:
    out, work = tmp_path / "pretrained", tmp_path / "runs"
    cfg = recipe_config(ZOO["relu-nat"], width=8, epochs=2, work_dir=work, out_dir=out)
    cfg.subset = 128

    def stop(record: object) -> None:
        raise KeyboardInterrupt  # the session ends after the first pass

    with pytest.raises(KeyboardInterrupt):
        train(cfg, train_data=train_sample, callback=stop)
    assert (work / "relu-nat.ckpt" / "checkpoint.json").is_file()
    cards = build(["relu-nat"], out_dir=out, work_dir=work, **(SMALL | {"epochs": 2}))
    tr = cards["relu-nat"]["training"]
    assert tr["resumed"] is True and [h["epoch"] for h in tr["history"]] == [0, 1]
    assert tr["resumed_after_passes"] == [1]  # and the card says so
    assert "resumed after pass 1 with the same schedule" in cards["relu-nat"]["status"]


def test_paper_tier_build_resumes_the_first_unfinished_model(
    tmp_path: Path, train_sample: CIFAR10Tensors
) -> None:
    """`build(tier="paper")` skips what is finished and continues the first model that is not,
    at its checkpoint: the paper tier's parents come from the paper tier."""
    out, work = tmp_path / "pretrained", tmp_path / "runs"
    first = build(["relu-nat-w32"], out_dir=out, work_dir=work, **SMALL)["relu-nat-w32"]
    assert first["zoo"]["command"].startswith("python -m kwta zoo build --tier paper")
    assert "(paper tier)" in first["status"]
    cfg = recipe_config(ZOO["relu-at-w32"], width=8, epochs=2, work_dir=work, out_dir=out)
    cfg.subset = 128

    def stop(record: object) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, train_data=train_sample, callback=stop)
    cards = build(
        ["relu-nat-w32", "relu-at-w32"], out_dir=out, work_dir=work, **(SMALL | {"epochs": 2})
    )
    assert cards["relu-nat-w32"]["sha256"] == first["sha256"]  # finished: skipped
    at = cards["relu-at-w32"]["training"]
    assert (
        at["resumed_after_passes"] == [1] and at["init_from"]["file"] == "relu-nat-w32.safetensors"
    )
    assert at["init_from"]["sha256"] == first["sha256"]


def test_threads_file_sets_the_thread_count(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    f = tmp_path / "threads"
    try:
        assert apply_threads(None) == before
        f.write_text("not a number")
        assert apply_threads(f) == before  # malformed: unchanged
        f.write_text("1\n")
        assert apply_threads(f) == 1
        assert apply_threads(tmp_path / "missing") == 1
    finally:
        torch.set_num_threads(before)


def test_checkpoints_live_outside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    assert default_work_dir() == Path("/somewhere/cache/kwta/zoo")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_work_dir() == Path.home() / ".cache" / "kwta" / "zoo"


def test_missing_parent_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"kwta zoo build --only kwta0\.2-nat"):
        build(["kwta0.1-nat"], out_dir=tmp_path / "p", work_dir=tmp_path / "w", **SMALL)


def test_time_budget_sizes_the_schedule(train_sample: CIFAR10Tensors, tmp_path: Path) -> None:
    cfg = recipe_config(ZOO["relu-nat"], width=8, work_dir=tmp_path, out_dir=tmp_path)
    pass_s = measure_pass_seconds(cfg, train_sample, steps=2, images=1000)
    assert 0 < pass_s < 60
    assert size_epochs(cfg, 10 * pass_s, pass_s) == 10
    assert size_epochs(cfg, 0.1 * pass_s, pass_s) == 1  # at least one pass
    fine = recipe_config(ZOO["kwta0.1-nat"], width=8, epochs=1, work_dir=tmp_path, out_dir=tmp_path)
    assert size_epochs(fine, 12 * pass_s, pass_s) == 12 - 8  # its 8 fine-tuning passes are fixed


def test_cli_zoo_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "zoo", "build", "--only", "relu-nat", "--width", "8", "--epochs", "1", "--subset", "64",
        "--eval-n", "10", "--clean-n", "50", "--attacks", "pgd", "--restarts", "0",
        "--out", str(tmp_path / "p"), "--work", str(tmp_path / "w"), "-q",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("relu-nat: clean ") and "PGD-40" in out
    with pytest.raises(SystemExit) as err:
        main(["zoo", "build", "--only", "nope", "--out", str(tmp_path)])
    assert err.value.code == 2


def _smoke(script: str, out: Path) -> list[str]:
    """Run ``scripts/<script> OUT --smoke`` (the GPU script's CPU path); the files it wrote."""
    proc = subprocess.run(
        ["bash", f"scripts/{script}", str(out), "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return sorted(p.name for p in out.iterdir())


@pytest.mark.slow
def test_device_script_smoke(tmp_path: Path) -> None:
    """scripts/device_zoo.sh --smoke: the GPU script's whole path, on the CPU, in seconds."""
    out = tmp_path / "out"
    files = _smoke("device_zoo.sh", out)
    assert files == ["bench.md", "kwta0.2-nat-w8.tar.gz", "relu-nat-w8.tar.gz", "report.txt"]
    assert len(files) <= 8  # what the device tool brings back
    with tarfile.open(out / "relu-nat-w8.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["relu-nat.json", "relu-nat.safetensors"]
        card = json.load(tar.extractfile("relu-nat.json"))  # type: ignore[arg-type]
    assert card["arch_kwargs"]["width"] == 8 and card["metrics"]["robust_n"] == 10
    report = (out / "report.txt").read_text()
    assert "zoo build exit 0" in report and "torch" in report
    assert "| fast path" in (out / "bench.md").read_text()


@pytest.mark.slow
def test_device_gpu_script_smoke(tmp_path: Path) -> None:
    """scripts/device_gpu.sh --smoke, the dry run of #36's GPU call on the CPU (the Triton
    kernel through the interpreter): the steps in order of value, each writing its own file
    as it ends, each inside its cap, no more files than come back."""
    out = tmp_path / "out"
    files = _smoke("device_gpu.sh", out)
    order = ["tests.txt", "launch.md", "bench.md", "pages.json", "tune.md"]
    assert files == sorted([*order, "pages.md", "report.txt"]) and len(files) <= 8
    written = [(out / f).stat().st_mtime for f in order]
    assert written == sorted(written)  # each step's file, in the order of the steps
    report = (out / "report.txt").read_text()
    steps = re.findall(r"^## (\S+): exit (\d+), (\d+) s \(cap (\d+) s\)$", report, flags=re.M)
    assert [s[0] for s in steps] == ["tests", "launch", "bench_kwta", "device_pages", "tune_triton"]
    for name, rc, took, cap in steps:
        assert rc == "0" and int(took) <= int(cap) + 1, (name, rc, took, cap)
    assert sum(int(s[3]) for s in steps[:4]) <= 510  # the fixed caps fit the deadline
    assert "passed" in (out / "tests.txt").read_text()
    assert "| float32 | 32 (4) |" in (out / "launch.md").read_text()
    assert "| bfloat16 | 16 (2) |" in (out / "launch.md").read_text()
    assert json.loads((out / "pages.json").read_text())["passed"] is True
    tune = (out / "tune.md").read_text()
    assert "| 2×2×32×32 | NCHW |" in tune and "| 2×16×4×4 | CL |" in tune
    assert "ours, PyTorch path ms" in (out / "bench.md").read_text()


@pytest.mark.slow
def test_device_gpu_script_keeps_its_deadline_even_with_sigint_ignored(tmp_path: Path) -> None:
    """A short deadline cuts the steps with SIGINT — delivered even to a job started with
    SIGINT ignored, as a background job is — so pytest still prints its summary, every step
    still writes its line, and the whole run ends inside the deadline."""
    out = tmp_path / "out"
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", "scripts/device_gpu.sh", str(out), "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"KWTA_DEADLINE_S": "17"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert took <= 17 + 5, took
    report = (out / "report.txt").read_text()
    steps = dict(re.findall(r"^## (\S+): exit (\d+)", report, flags=re.M))
    assert list(steps) == ["tests", "launch", "bench_kwta", "device_pages"], report
    assert "124" in steps.values() and "## tune_triton: skipped" in report  # cut at the caps
    tests = (out / "tests.txt").read_text()
    assert re.search(r"\d+ passed|KeyboardInterrupt", tests), tests[-500:]  # pytest's summary
    # a step cut by SIGINT says so itself (a SIGKILL would leave no traceback)
    assert "KeyboardInterrupt" in report + tests, report[-1500:]


@pytest.mark.slow
def test_device_paper_script_smoke(tmp_path: Path) -> None:
    """scripts/device_paper.sh --smoke: every job of the GPU run, on the CPU, in about a minute
    (sample data, width 8, one pass), and what comes back fits the device tool's limits."""
    out = tmp_path / "out"
    before = sorted(p.name for p in (REPO / "pretrained").iterdir())
    files = _smoke("device_paper.sh", out)
    assert sorted(p.name for p in (REPO / "pretrained").iterdir()) == before  # a copy is used
    assert files == [
        "bench.md", "ckpt-sweep.tar.gz", "ckpt-zoo.tar.gz", "models.tar.gz", "report.txt",
        "results.tar.gz",
    ]  # fmt: skip
    report = (out / "report.txt").read_text()
    for job in ("zoo-lwta0.1-nat", "zoo-kwta0.1-direct", "sweep", "fd-tramer",
                "adaptive-kwta0.2-nat", "adaptive-relu-at", "adaptive-kwta0.1-at"):  # fmt: skip
        assert f"{job}: exit 0" in report, report[-3000:]
    with tarfile.open(out / "models.tar.gz") as tar:
        names = sorted(tar.getnames())
        assert "pretrained/lwta0.1-nat.safetensors" in names
        card = json.load(tar.extractfile("pretrained/kwta0.1-direct.json"))  # type: ignore[arg-type]
    assert card["arch_kwargs"]["width"] == 8 and card["training"]["hyperparameters"]["epochs"] == 1
    with tarfile.open(out / "results.tar.gz") as tar:
        sweep = json.load(tar.extractfile("results/sweep.json"))  # type: ignore[arg-type]
        adaptive = json.load(tar.extractfile("results/adaptive-kwta0.1-at.json"))  # type: ignore[arg-type]
        fd = json.load(tar.extractfile("results/fd-tramer.json"))  # type: ignore[arg-type]
    assert [p["ratio"] for p in sweep["points"]] == [0.2, 0.15]
    assert sweep["device"]["type"] == "cpu" and sweep["device"]["fp32"] == "ieee"
    assert adaptive["adaptive"]["n"] == 8 and "eot-pgd" in adaptive["adaptive"]["attacks"]
    assert fd[0]["model"] == "kwta0.1-nat" and fd[0]["tramer"]["settings"]["steps"] == 2
    for f in out.iterdir():
        assert f.stat().st_size < 16 * 2**20  # what the device tool brings back


def test_torch_hub_loads_a_zoo_model(test_sample: CIFAR10Tensors) -> None:
    model = torch.hub.load(str(REPO), "kwta_resnet18", name="relu-nat", source="local")
    ref = load_pretrained("relu-nat")
    x, _ = test_sample.tensors(slice(0, 8))
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    with pytest.raises(KeyError, match="available"):
        torch.hub.load(str(REPO), "kwta_resnet18", name="../etc/passwd", source="local")
    assert (
        sha256_of(REPO / "pretrained" / "relu-nat.safetensors")
        == json.loads((REPO / "pretrained" / "relu-nat.json").read_text())["sha256"]
    )


@pytest.mark.slow
def test_build_adds_adaptive_attacks_with_the_relu_twin(tmp_path: Path) -> None:
    out, work = tmp_path / "pretrained", tmp_path / "runs"
    small = SMALL | {"eval_n": 4, "restarts": 0}
    build(["relu-nat", "kwta0.2-nat"], out_dir=out, work_dir=work, **small)
    cards = build(["kwta0.2-nat"], out_dir=out, work_dir=work, adaptive_n=4, **small)
    a = cards["kwta0.2-nat"]["metrics"]["adaptive"]
    assert a["n"] == 4 and a["twin"] == "relu-nat" and "transfer" in a["robust_accuracy"]
    assert {"apgd-ce", "square", "fd-pgd"} <= set(a["robust_accuracy"])
    assert a["A_rob_adaptive"] <= min(v for v in a["robust_accuracy"].values())
    assert cards["kwta0.2-nat"]["metrics"]["robust_n"] == 4  # the standard evaluation is kept


def test_torch_hub_loads_from_a_copy_without_links(tmp_path: Path) -> None:
    """torch.hub downloads a zip, which has no symbolic links: kwta/models is then a
    plain file, and hubconf maps kwta.models to the models/ folder itself."""
    import zipfile

    archive = tmp_path / "repo.zip"
    with zipfile.ZipFile(archive, "w") as z:  # what GitHub's zipball + torch.hub unpack
        for folder in ("kwta", "models"):
            for p in sorted((REPO / folder).rglob("*")):
                rel = p.relative_to(REPO)
                if (
                    p.is_file()
                    and "__pycache__" not in rel.parts
                    and rel.parts[:2] != ("kwta", "models")
                ):
                    z.write(p, str(rel))
        z.writestr("kwta/models", "../models")  # a link stored as a file, as unzip leaves it
        z.write(REPO / "hubconf.py", "hubconf.py")
        for name in ("relu-nat.json", "relu-nat.safetensors"):
            z.write(REPO / "pretrained" / name, f"pretrained/{name}")
    repo = tmp_path / "repo"
    zipfile.ZipFile(archive).extractall(repo)
    assert (repo / "kwta" / "models").is_file()
    code = (
        f"import torch; m = torch.hub.load({str(repo)!r}, 'kwta_resnet18', name='relu-nat', "
        "source='local'); import kwta, kwta.models; print(kwta.__file__); "
        "print(kwta.models.__file__); print(sum(p.numel() for p in m.parameters()))"
    )
    env = {**os.environ, "KWTA_PRETRAINED": str(repo / "pretrained"), "KWTA_NATIVE": "0"}
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    kwta_file, models_file, n_params = res.stdout.split()
    assert Path(kwta_file).is_relative_to(repo) and Path(models_file).is_relative_to(repo)
    assert int(n_params) == sum(p.numel() for p in load_pretrained("relu-nat").parameters())
