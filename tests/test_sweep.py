"""Fig. 4 by training (kwta.training.sweep): γ lowered step by step from a trained k-WTA
network on real CIFAR-10 images, each step fine-tuned and evaluated; resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from kwta.data import CIFAR10Tensors
from kwta.nn.activations import get_ratio
from kwta.training import sweep as sweep_mod
from kwta.training.sweep import SWEEP_FILE, publish_sweep, ratio_sweep, read_sweep, sweep_ratios
from kwta.zoo.hub import list_pretrained, load_from_card, save_model, sha256_of


def test_sweep_ratios() -> None:
    assert sweep_ratios(0.2, 0.1, 0.025) == [0.175, 0.15, 0.125, 0.1]
    assert sweep_ratios(0.2, 0.11, 0.05) == [0.15]
    with pytest.raises(ValueError):
        sweep_ratios(0.1, 0.2, 0.05)
    with pytest.raises(ValueError):
        sweep_ratios(0.2, 0.1, 0.0)


@pytest.fixture
def start(tmp_path: Path, kwta_model: nn.Module) -> Path:
    card = {
        "name": "kwta0.2-start",
        "arch": "resnet18",
        "arch_kwargs": {"width": 8, "act": "kwta", "act_kwargs": {"ratio": 0.2}},
        "training": {"hyperparameters": {"batch_size": 32, "label_smoothing": 0.1}},
    }
    save_model(kwta_model, tmp_path / "start" / "kwta0.2-start.safetensors", card)
    return tmp_path / "start" / "kwta0.2-start.json"


def test_ratio_sweep_fine_tunes_evaluates_and_resumes(
    start: Path,
    tmp_path: Path,
    train_sample: CIFAR10Tensors,
    test_sample: CIFAR10Tensors,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "sweep"
    kw = {"train_data": train_sample, "test_data": test_sample, "work": work, "passes": 1}
    kw |= {"subset": 64, "eval_n": 100, "robust_n": 20, "lr": 0.01}
    result = ratio_sweep(start, [0.15, 0.1], **kw)
    points = result["points"]
    assert [p["ratio"] for p in points] == [0.2, 0.15, 0.1]
    assert all(0.0 <= p["robust_accuracy"] <= p["clean_accuracy"] + 1e-9 for p in points)
    assert points[0]["clean_accuracy"] > 0.12  # the start model is trained (chance: 0.1)
    for p in points[1:]:
        card = work / f"sweep-{p['ratio']:g}.json"
        model = load_from_card(card, device="cpu")
        assert get_ratio(model) == pytest.approx(p["ratio"])  # each step trained at its γ
        assert p["sha256"] == sha256_of(card.with_suffix(".safetensors"))
        assert json.loads(card.read_text())["training"]["init_from"]  # started from the last
    assert json.loads((work / "sweep.json").read_text())["points"] == points

    def no_training(*a: object, **k: object) -> None:
        raise AssertionError("a finished step was trained again")

    monkeypatch.setattr(sweep_mod, "train", no_training)
    again = ratio_sweep(start, [0.15, 0.1], **kw)
    assert again["points"] == points  # nothing retrained or re-measured
    with pytest.raises(ValueError, match="descend"):
        ratio_sweep(start, [0.25], **kw)


def test_cli_sweep(
    start: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from kwta.cli import main

    monkeypatch.setenv("KWTA_PRETRAINED", str(start.parent))
    monkeypatch.delenv("KWTA_DATA", raising=False)  # the bundled sample
    work = tmp_path / "cli-sweep"
    args = ["sweep", "--model", "kwta0.2-start", "--to", "0.15", "--delta", "0.05"]
    args += ["--passes", "1", "--subset", "64", "--eval-n", "50", "--robust-n", "10", "-q"]
    assert main([*args, "--work", str(work)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "| γ | clean | PGD-20 |" and len(table) == 5  # γ 0.2 and 0.15
    points = json.loads((work / "sweep.json").read_text())["points"]
    assert table[3].startswith("| 0.15 |") and f"{points[1]['clean_accuracy']:.2%}" in table[3]
    # published beside the models for the Model zoo page, valid for these weights only
    assert table[4] == f"wrote {SWEEP_FILE} in {start.parent.name}/ (the Model zoo page's Fig. 4)"
    cards = list_pretrained()
    published = read_sweep(start.parent, cards)
    assert published is not None and published["points"] == points
    assert published["start"] == "kwta0.2-start"
    assert read_sweep(start.parent, {}) is None  # the start model is gone
    other = {"kwta0.2-start": cards["kwta0.2-start"] | {"sha256": "0" * 64}}
    assert read_sweep(start.parent, other) is None  # retrained since: stale numbers hidden
    with pytest.raises(ValueError, match="did not start"):
        publish_sweep(
            json.loads((work / "sweep.json").read_text()), other["kwta0.2-start"], tmp_path
        )
    (start.parent / SWEEP_FILE).write_text("{not json")
    assert read_sweep(start.parent, cards) is None
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--model", "../etc/passwd"])
    assert exit_info.value.code == 2
    assert "no pretrained model" in capsys.readouterr().err


def test_sweep_device_note_says_where_and_flags_tf32() -> None:
    from kwta.training.sweep import sweep_device_note

    assert sweep_device_note({}) == ""  # an older file that does not say
    assert "unnamed device" in sweep_device_note({"device": {}})
    ieee = sweep_device_note({"device": {"type": "cuda", "name": "GPU X", "fp32": "ieee"}})
    assert "GPU X" in ieee and "TF32" not in ieee
    tf32 = sweep_device_note({"device": {"type": "cuda", "name": "GPU X", "fp32": "tf32"}})
    assert "TF32" in tf32
