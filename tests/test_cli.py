"""The command line, in-process through ``kwta.cli.main`` (plus one ``python -m kwta`` run)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kwta.cli import main
from kwta.zoo.hub import load_from_card, sha256_of

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Card of a width-8 k-WTA-0.2 ResNet-18 trained by ``kwta train`` on 64 real images."""
    out = tmp_path_factory.mktemp("cli-train")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("KWTA_DATA", raising=False)  # the bundled sample of real CIFAR-10 images
        rc = main(
            [
                "train", "--act", "kwta", "--ratio", "0.2", "--width", "8", "--epochs", "1",
                "--subset", "64", "--batch-size", "32", "--eval-n", "100",
                "--out", str(out), "--name", "tiny", "--quiet",
            ]
        )  # fmt: skip
    assert rc == 0
    return out / "tiny.json"


def test_train_writes_weights_card_and_checkpoint(trained: Path) -> None:
    card = json.loads(trained.read_text())
    weights = trained.with_suffix(".safetensors")
    assert card["sha256"] == sha256_of(weights)
    assert card["arch_kwargs"] == {"act": "kwta", "act_kwargs": {"ratio": 0.2}, "width": 8}
    assert card["training"]["method"] == "natural"
    assert card["training"]["data"]["train_images"] == 64
    assert card["training"]["data"]["jpeg_copy"] is True
    assert card["metrics"]["clean_n"] == 100
    assert (trained.parent / "tiny.ckpt" / "checkpoint.safetensors").is_file()
    load_from_card(trained)


def test_train_resume_of_a_finished_run_reproduces_it(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(trained.parent, out)
    monkeypatch.delenv("KWTA_DATA", raising=False)
    rc = main(
        [
            "train", "--act", "kwta", "--ratio", "0.2", "--width", "8", "--epochs", "1",
            "--subset", "64", "--batch-size", "32", "--no-eval",
            "--out", str(out), "--name", "tiny", "--quiet", "--resume",
        ]
    )  # fmt: skip
    assert rc == 0
    assert "model: tiny" in capsys.readouterr().out
    card = json.loads((out / "tiny.json").read_text())
    assert card["sha256"] == json.loads(trained.read_text())["sha256"]
    assert card["training"]["resumed"] is True


def test_evaluate_writes_json_and_updates_the_card(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    card_path = tmp_path / "tiny.json"
    shutil.copy(trained, card_path)
    shutil.copy(trained.with_suffix(".safetensors"), tmp_path / "tiny.safetensors")
    before = sha256_of(tmp_path / "tiny.safetensors")
    out_json = tmp_path / "eval.json"
    monkeypatch.delenv("KWTA_DATA", raising=False)
    argv = [
        "evaluate", "--card", str(card_path), "--n", "20", "--attacks", "pgd,mim",
        "--clean-n", "100", "--batch-size", "64", "--json", str(out_json), "--update-card",
        "--restarts", "1", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "A_rob" in table and "pgd" in table and "mim" in table
    assert "PGD-40, worst of 2 starts" in table

    res = json.loads(out_json.read_text())
    assert res["clean"]["n"] == 100 and 0.0 <= res["clean"]["accuracy"] <= 1.0
    assert res["subset"]["n"] == 20 and len(res["subset"]["indices"]) == 20
    assert set(res["attacks"]) == {"pgd", "mim"}
    for r in res["attacks"].values():
        assert 0.0 <= r["accuracy"] <= res["subset"]["clean_accuracy"]
        assert r["max_linf"] <= 0.031 + 1e-6
        assert r["settings"]["eps"] == 0.031
    assert res["attacks"]["pgd"]["settings"]["steps"] == 40  # App. D.1
    worst = min(r["accuracy"] for r in res["attacks"].values())
    assert res["A_rob"] == res["min_over_attacks"] == worst  # Table 1: the row's minimum
    assert res["A_rob_per_image"] <= res["A_rob"]
    assert res["data"]["jpeg_copy"] is True

    card = json.loads(card_path.read_text())
    assert sha256_of(tmp_path / "tiny.safetensors") == before == card["sha256"]
    assert card["metrics"]["A_rob"] == res["A_rob"]
    assert card["metrics"]["robust_accuracy"].keys() == {"pgd", "mim"}
    assert card["metrics"]["clean_n"] == 100  # training metrics kept
    restarts = card["metrics"]["pgd_restarts"]  # PGD-40 from 2 starts, per-image worst
    assert restarts["starts"] == 2 and restarts["accuracy"] <= min(restarts["per_start_accuracy"])
    ev = card["evaluation"]
    assert ev["subset"]["n"] == 20 and "indices" not in ev["subset"]
    assert ev["command"].startswith("kwta evaluate --card")
    assert ev["data"]["source"] and ev["device"] and ev["date"]
    load_from_card(card_path)  # still loads: the weights were not touched


def test_evaluate_by_name(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    shutil.copy(trained, tmp_path / "tiny.json")
    shutil.copy(trained.with_suffix(".safetensors"), tmp_path / "tiny.safetensors")
    monkeypatch.setenv("KWTA_PRETRAINED", str(tmp_path))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    argv = ["evaluate", "--model", "tiny", "--n", "10", "--attacks", "fgsm", "--clean-n", "50"]
    assert main([*argv, "--json", "-", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["model"]["name"] == "tiny" and res["subset"]["n"] == 10
    assert res["A_rob"] == res["attacks"]["fgsm"]["accuracy"]  # one attack: A_rob is its accuracy

    # A name is only looked up among the cards, never opened as a path.
    for name in [str(tmp_path / "tiny.json"), "../tiny", str(trained)]:
        with pytest.raises(SystemExit) as exc:
            main(["evaluate", "--model", name, "--n", "5", "--attacks", "fgsm"])
        assert exc.value.code == 2
        assert "no pretrained model named" in capsys.readouterr().err


def test_evaluate_adaptive_with_the_relu_twin(
    trained: Path, relu_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from kwta.attacks.registry import get_attack, max_queries
    from kwta.zoo.hub import save_model

    tiny = json.loads(trained.read_text())
    # as if a standard evaluation had run before: the adaptive-only run must keep it
    tiny["metrics"] |= {"clean_accuracy": 0.5, "clean_n": 10_000, "robust_accuracy": {"pgd": 0.1}}
    tiny["evaluation"] = {"clean": {"accuracy": 0.5, "n": 10_000}, "command": "earlier"}
    (tmp_path / "tiny.json").write_text(json.dumps(tiny))
    shutil.copy(trained.with_suffix(".safetensors"), tmp_path / "tiny.safetensors")
    twin_card = {
        "name": "relu-twin",
        "arch": "resnet18",
        "arch_kwargs": {"width": 8, "act": "relu", "act_kwargs": {}},
        "training": {"method": "natural"},
    }
    save_model(relu_model, tmp_path / "relu-twin.safetensors", twin_card)
    monkeypatch.setenv("KWTA_PRETRAINED", str(tmp_path))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    before = json.loads((tmp_path / "tiny.json").read_text())["metrics"]
    argv = [
        "evaluate", "--model", "tiny", "--attacks", "none", "--clean-n", "50", "--adaptive",
        "--adaptive-n", "4", "--adaptive-attacks", "square,fd-pgd", "--update-card", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "adaptive attacks" in table and "transfer from relu-twin" in table
    card = json.loads((tmp_path / "tiny.json").read_text())
    ad = card["metrics"]["adaptive"]
    assert set(ad["robust_accuracy"]) == {"pgd", "square", "fd-pgd", "transfer"}
    assert ad["twin"] == "relu-twin" and ad["n"] == 4
    budget = max_queries("fd-pgd", get_attack("fd-pgd").defaults)
    assert ad["max_queries_per_image"]["fd-pgd"] == budget > 1000
    assert ad["A_rob_adaptive"] == min(ad["robust_accuracy"].values())
    assert card["evaluation_adaptive"]["command"].startswith("kwta evaluate --model tiny")
    # no standard attack ran: the card keeps what it had, the clean accuracy included
    assert card["metrics"]["robust_accuracy"] == before["robust_accuracy"] == {"pgd": 0.1}
    assert (card["metrics"]["clean_accuracy"], card["metrics"]["clean_n"]) == (0.5, 10_000)
    assert card["evaluation"] == tiny["evaluation"]
    # the paper's Table 1 row for natural k-WTA-0.2 is stored beside ours
    assert card["published"]["clean_accuracy"] == 0.917 and "Table 1" in card["published"]["source"]
    # --twin none: no transfer; an unknown twin is a usage error
    assert main([*argv[:-2], "--twin", "none", "--quiet"]) == 0
    assert "transfer" not in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main([*argv[:-2], "--twin", "../relu-twin"])
    assert exc.value.code == 2 and "no pretrained model named" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([*argv[:-2], "--twin", "tiny"])
    assert exc.value.code == 2 and "its own transfer source" in capsys.readouterr().err


def _bad_args(tmp: Path, card: Path) -> list[tuple[list[str], str]]:
    out = str(tmp / "out")
    return [
        ([], "required"),
        (["train"], "--out"),
        (["train", "--out", out, "--act", "kwta", "--ratio", "0"], "(0, 1]"),
        (["train", "--out", out, "--act", "kwta", "--ratio", "1.5"], "(0, 1]"),
        (["train", "--out", out, "--ratio", "abc"], "(0, 1]"),
        (["train", "--out", out, "--incremental-from", "0.2"], "needs --act kwta"),
        (["train", "--out", out, "--act", "kwta", "--ratio", "0.2", "--incremental-from", "0.1"],
         "must be >= --ratio"),
        (["train", "--out", out, "--epochs", "0"], "positive integer"),
        (["train", "--out", out, "--method", "sgd"], "invalid choice"),
        (["train", "--out", out, "--act", "gelu"], "invalid choice"),
        (["train", "--out", out, "--data", str(tmp / "missing")], "does not exist"),
        (["train", "--out", out, "--name", "../escape"], "model name"),
        (["evaluate"], "one of the arguments --model --card is required"),
        (["evaluate", "--model", "x", "--card", str(card)], "not allowed with"),
        (["evaluate", "--card", str(card), "--attacks", "pgd,nope"], "unknown attack(s) nope"),
        (["evaluate", "--card", str(card), "--adaptive-attacks", "square,x"],
         "unknown adaptive attack(s) x"),
        (["evaluate", "--card", str(card), "--n", "0"], "positive integer"),
        (["evaluate", "--card", str(card), "--clean-n", "-3"], "positive integer"),
        (["evaluate", "--card", str(tmp / "missing.json")], "does not exist"),
    ]  # fmt: skip


def test_bad_arguments_exit_2(trained: Path, tmp_path: Path, capsys) -> None:
    for argv, message in _bad_args(tmp_path, trained):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
    assert not (tmp_path / "out").exists()  # nothing was trained


def test_python_m_kwta() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kwta", "train", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for flag in ("--incremental-from", "--method", "--resume", "--subset", "--precision"):
        assert flag in proc.stdout
    for flag in ("--schedule", "--label-smoothing", "--nesterov", "--init-from"):
        assert flag in proc.stdout


def test_portable_command_drops_machine_folders() -> None:
    from kwta.cli import portable_command

    argv = ["kwta", "evaluate", "--data", "/srv/data/cifar10-jpeg.tar.gz", "--json=/tmp/x/r.json",
            "--model", "relu-nat", "--json", "-", "--card", "/home/u/runs/m.json"]  # fmt: skip
    assert portable_command(argv) == (
        "kwta evaluate --data cifar10-jpeg.tar.gz --json=r.json --model relu-nat --json - "
        "--card m.json"
    )
