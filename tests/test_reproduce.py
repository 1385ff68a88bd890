"""Results that carry their provenance: ``kwta reproduce`` and the generated Python script.

Real shipped models, real bundled CIFAR-10 test images. A result is made as a page makes
it (:meth:`PageAction.run` with settings, :func:`result_document`), written to JSON,
rerun and compared; its script runs in a subprocess. The pages' own downloads are
tested through AppTest in ``tests/test_app.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from kwta.cli import main
from kwta.data import CIFAR10Tensors
from kwta.explorer.actions import ActionInputs, get_action
from kwta.explorer.provenance import (
    ModelRef,
    Provenance,
    ProvenanceError,
    balanced_images,
    dataset_image,
    make_provenance,
    parse_document,
    read_document,
    result_document,
    uploaded_image,
)
from kwta.explorer.reproduce import NotReproduced, reproduce
from kwta.explorer.scripts import python_script, script_prints
from kwta.zoo.hub import list_pretrained, load_pretrained, pretrained_dir

ROOT = Path(__file__).resolve().parents[1]
#: Small settings: each action's result in about a second on two cores.
SMALL: dict[str, dict[str, Any]] = {
    "attack": {"steps": 8, "alpha": 0.004},
    "adaptive": {"steps": 3, "samples": [4, 40]},
    "attack_path": {"steps": 5, "grid": 5, "second": "random"},
    "landscape": {"grid": 6, "seed": 3},
    "toy": {"steps": 60, "width": 16},
    "patterns": {"n_dirs": 1, "ratios": [0.5], "layer": "", "eps": 0.004},
}


def make_result(
    key: str, name: str | None, data: CIFAR10Tensors, index: int = 3, **settings: Any
) -> tuple[dict[str, Any], Provenance]:
    """A result of action ``key`` as a page writes it (JSON round trip included)."""
    if name is None:
        inputs = ActionInputs(nn.Identity(), torch.zeros(1, 3, 32, 32), 0)
        prov = make_provenance(key, settings, model=None, image=None, device="cpu")
    else:
        x, y = data.tensors([index])
        inputs = ActionInputs(load_pretrained(name, "cpu"), x, int(y))
        sha = list_pretrained()[name]["sha256"]
        prov = make_provenance(
            key,
            settings,
            model=ModelRef(name, sha),
            image=dataset_image(data, index),
            device="cpu",
        )
    result = get_action(key).run(inputs, prov.settings)
    doc = {"result": "the page's own content"} | result_document(prov, result, inputs)
    return json.loads(json.dumps(doc)), prov


def run_script(source: str, tmp_path: Path) -> dict[str, str]:
    """Run a generated script; its ``name: value`` lines."""
    path = tmp_path / "reproduce_result.py"
    path.write_text(source)
    env = os.environ | {"KWTA_PRETRAINED": str(pretrained_dir())}
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln.split(": ", 1) for ln in out.stdout.splitlines() if ": " in ln]
    return {k: v for k, v in lines}


def same_numbers(printed: dict[str, str], summary: dict[str, Any]) -> None:
    """The script printed every summary number, exactly."""
    assert list(printed) == list(summary)
    for name, value in summary.items():
        assert printed[name] == str(value), (name, printed[name], value)


@pytest.mark.parametrize(
    ("key", "name"),
    [  # the pages' own results are reproduced in the fast tier (test_app_results.py)
        ("attack", "kwta0.1-nat"),
        *(
            pytest.param(key, name, marks=pytest.mark.slow)
            for key, name in (
                ("adaptive", "kwta0.1-nat"),
                ("attack_path", "relu-nat"),
                ("landscape", "kwta0.1-nat"),
                ("toy", None),
                ("patterns", "kwta0.1-nat"),
                ("patterns", "relu-nat"),
            )
        ),
    ],
)
def test_a_result_reproduces_exactly_and_its_script_prints_the_same_numbers(
    key: str, name: str | None, test_sample: CIFAR10Tensors, tmp_path: Path
) -> None:
    doc, prov = make_result(key, name, test_sample, **SMALL[key])
    rep = reproduce(doc)
    assert rep.exact and rep.passed, rep.report()
    assert [c.name for c in rep.checks] == [c["name"] for c in doc["check"]]
    assert rep.summary == doc["summary"]
    assert list(doc["summary"]) == script_prints(key)
    block = doc["provenance"]
    assert block["action"] == key and block["seed"] == prov.seed
    assert block["settings"] == {
        k: list(v) if isinstance(v, tuple) else v for k, v in prov.settings.items()
    }
    assert block["device"] == "cpu" and block["precision"] == "float32"
    same_numbers(run_script(python_script(parse_document(doc)), tmp_path), doc["summary"])


@pytest.mark.parametrize(
    ("key", "n", "seed"),
    [("weights", 12, 0), pytest.param("masking", 8, 3, marks=pytest.mark.slow), ("gamma", 20, 0)],
)
def test_a_result_on_a_batch_reproduces(
    key: str, n: int, seed: int, test_sample: CIFAR10Tensors, tmp_path: Path
) -> None:
    model = load_pretrained("kwta0.1-nat", "cpu")
    ref, xs, ys = balanced_images(test_sample, n, seed)
    inputs = ActionInputs(model, xs[:1], int(ys[0]), xs, ys)
    settings = {"masking": {"seed": seed}, "gamma": {"ratios": [0.1, 0.05]}}.get(key, {})
    sha = list_pretrained()["kwta0.1-nat"]["sha256"]
    prov = make_provenance(
        key, settings, model=ModelRef("kwta0.1-nat", sha), image=None, device="cpu", batch=ref
    )
    result = get_action(key).run(inputs, prov.settings)
    doc = json.loads(json.dumps(result_document(prov, result, inputs)))
    assert doc["provenance"]["batch"] == {
        "n": n, "seed": seed, "sha256": ref.sha256, "dataset": ref.dataset, "split": "test"
    }  # fmt: skip
    assert reproduce(doc).passed
    same_numbers(run_script(python_script(parse_document(doc)), tmp_path), doc["summary"])
    doc["provenance"]["batch"]["seed"] = seed + 1  # other images under the recorded digest
    with pytest.raises(NotReproduced, match="not the recorded ones"):
        reproduce(doc)


def test_a_result_from_elsewhere_says_so_and_still_runs(test_sample: CIFAR10Tensors) -> None:
    doc, _ = make_result("landscape", "relu-nat", test_sample, **SMALL["landscape"])
    doc["provenance"] |= {"device": "cuda", "device_name": "NVIDIA H100", "library": "0.0.9"}
    rep = reproduce(doc)  # no GPU here: rerun on the CPU
    assert rep.device == "cpu" and not rep.exact and rep.passed, rep.report()
    assert len(rep.notes) == 2 and "made on cuda (NVIDIA H100)" in rep.notes[0]
    assert "kwta 0.0.9" in rep.notes[1] and "within the cross-device tolerances" in rep.report()
    # across devices only the documented probes count: a same-device-only number may differ
    doc2, _ = make_result("attack", "relu-nat", test_sample, **SMALL["attack"])
    doc2["provenance"]["library"] = "0.0.9"
    probe = next(p for p in doc2["check"] if p["name"] == "adversarial image")
    probe["values"][0] += 1e-3
    rep2 = reproduce(doc2)
    assert rep2.passed and "adversarial image" not in [c.name for c in rep2.checks]


def test_an_edited_setting_is_a_mismatch(test_sample: CIFAR10Tensors, tmp_path: Path) -> None:
    doc, _ = make_result("landscape", "kwta0.1-nat", test_sample, **SMALL["landscape"])
    doc["provenance"]["settings"]["seed"] = 4  # another random direction g2
    rep = reproduce(doc)
    assert not rep.passed
    assert [c.name for c in rep.checks if not c.passed] == ["random direction g2", "loss grid"]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    assert main(["reproduce", str(path), "-q"]) == 1


def test_an_edited_number_is_a_mismatch(test_sample: CIFAR10Tensors, tmp_path: Path) -> None:
    doc, _ = make_result("attack", "relu-nat", test_sample, **SMALL["attack"])
    probe = next(p for p in doc["check"] if p["name"] == "logits at every step")
    probe["values"][-1] += 1e-6
    rep = reproduce(doc)
    assert [c.name for c in rep.checks if not c.passed] == ["logits at every step"]
    assert "NOT reproduced" in rep.report()


def test_an_edited_summary_is_a_mismatch(
    test_sample: CIFAR10Tensors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary is what a paper quotes ("attack succeeded", "first misclassified at
    step"): flipping one of its values is caught and named, as an edited probe is."""
    doc, _ = make_result("attack", "relu-nat", test_sample, **SMALL["attack"])
    assert reproduce(doc).passed
    flipped = json.loads(json.dumps(doc))
    flipped["summary"]["attack succeeded"] = not doc["summary"]["attack succeeded"]
    rep = reproduce(flipped)
    assert not rep.passed and all(c.passed for c in rep.checks)  # the probes still agree
    assert rep.summary_diffs == [
        f"'attack succeeded': recorded {flipped['summary']['attack succeeded']}, "
        f"rerun {doc['summary']['attack succeeded']!r}"
    ]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(flipped))
    assert main(["reproduce", str(path)]) == 1
    out = capsys.readouterr().out
    assert "DIFF summary 'attack succeeded'" in out and "NOT reproduced" in out
    # a quoted float edited in its last digit; a field dropped; across devices a float may move
    edited = json.loads(json.dumps(doc))
    edited["summary"]["final linf"] += 1e-9
    del edited["summary"]["clean prediction"]
    diffs = reproduce(edited).summary_diffs
    assert [d.split(":")[0] for d in diffs] == ["'clean prediction'", "'final linf'"]
    edited["provenance"]["library"] = "0.0.9"  # another library: floats within 1e-3
    assert [d.split(":")[0] for d in reproduce(edited).summary_diffs] == ["'clean prediction'"]


def _copy_zoo(tmp_path: Path, name: str) -> Path:
    d = tmp_path / "pretrained"
    d.mkdir()
    card = list_pretrained()[name]
    for f in (card["card_file"], card["weights"]):
        shutil.copy(pretrained_dir() / Path(f).name, d / Path(f).name)
    return d


def test_other_weights_are_refused_with_a_clear_message(
    test_sample: CIFAR10Tensors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    doc, _ = make_result("attack", "relu-nat", test_sample, **SMALL["attack"])
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    zoo = _copy_zoo(tmp_path, "relu-nat")
    card_path = zoo / list_pretrained()["relu-nat"]["card_file"]
    weights = zoo / Path(list_pretrained()["relu-nat"]["weights"]).name
    monkeypatch.setenv("KWTA_PRETRAINED", str(zoo))
    assert main(["reproduce", str(path), "-q"]) == 0  # the copy is the same model
    capsys.readouterr()
    # a tampered weights file: its card no longer matches it
    data = bytearray(weights.read_bytes())
    data[-10] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(NotReproduced, match="does not match its card"):
        reproduce(doc)
    assert main(["reproduce", str(path)]) == 1
    assert "NOT reproduced" in capsys.readouterr().err
    # the card edited to the tampered file: not the weights the result was made with
    import hashlib

    card = json.loads(card_path.read_text())
    card["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    card_path.write_text(json.dumps(card))
    with pytest.raises(NotReproduced, match="other weights"):
        reproduce(doc)
    # and a model that is not there at all
    doc["provenance"]["model"]["name"] = "kwta0.1-at"
    with pytest.raises(NotReproduced, match=r"no pretrained model 'kwta0\.1-at'"):
        reproduce(doc)


def test_an_upload_travels_with_its_result(test_sample: CIFAR10Tensors, tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    ref = uploaded_image(pixels, label=5)
    x = torch.from_numpy(pixels).float().div(255).unsqueeze(0)
    model = load_pretrained("kwta0.1-nat", "cpu")
    prov = make_provenance(
        "attack",
        SMALL["attack"],
        model=ModelRef("kwta0.1-nat", list_pretrained()["kwta0.1-nat"]["sha256"]),
        image=ref,
        device="cpu",
    )
    inputs = ActionInputs(model, x, 5)
    doc = json.loads(
        json.dumps(result_document(prov, get_action("attack").run(inputs, prov.settings), inputs))
    )
    assert reproduce(doc).passed
    same_numbers(run_script(python_script(parse_document(doc)), tmp_path), doc["summary"])
    doc["provenance"]["image"]["pixels"] = doc["provenance"]["image"]["pixels"][:-4] + "AAAA"
    with pytest.raises(ProvenanceError, match="do not match their sha256"):
        parse_document(doc)


def test_a_test_image_must_be_the_recorded_one(test_sample: CIFAR10Tensors) -> None:
    doc, _ = make_result("attack", "relu-nat", test_sample, **SMALL["attack"])
    doc["provenance"]["image"]["index"] = 4  # another image under the recorded digest
    with pytest.raises(NotReproduced, match="not the recorded image"):
        reproduce(doc)
    doc["provenance"]["image"]["index"] = 5000  # past the bundled sample's end
    with pytest.raises(NotReproduced, match="has 1000 images"):
        reproduce(doc)


def _hostile(doc: dict[str, Any]) -> list[tuple[str, Any, str]]:
    p = doc["provenance"]
    return [
        ("action", "format_disk", "unknown page action"),
        ("action", 7, "'action' must be str"),
        ("schema", "other/9", "is not 'kwta-explorer/result/1'"),
        ("settings", {"steps": "40"}, "setting 'steps' must be a number"),
        ("settings", {"steps": 10**9}, "setting 'steps' must lie in"),
        ("settings", {"steps": 4.5}, "must be an integer"),
        ("settings", {"random_start": 1}, "must be true or false"),
        ("settings", {"loss": "x" * 10_000}, "must be one of"),
        ("settings", {"rm -rf": 1}, "unknown setting"),
        ("settings", [1, 2], "'settings' must be dict"),
        ("model", {"name": "../../etc/passwd", "sha256": p["model"]["sha256"]}, "not a valid"),
        ("model", {"name": "/etc/passwd", "sha256": p["model"]["sha256"]}, "not a valid"),
        ("model", {"name": "relu-nat", "sha256": "0" * 63}, "not a valid"),
        ("model", None, "needs a model"),
        ("image", {"label": 3, "sha256": "0" * 64, "pixels": "A" * 10**6}, "too long"),
        ("image", {"label": 30, "sha256": "0" * 64}, "class 0–9"),
        ("image", p["image"] | {"split": "train"}, "'split' must be 'test'"),
        ("image", p["image"] | {"index": -1}, "out of range"),
        ("image", p["image"] | {"dataset": "tarball:/etc/passwd"}, "not a valid"),
        ("device", "tpu", "'device' must be 'cpu' or 'cuda'"),
        ("precision", "float64", "precision 'float64' is not one of"),
    ]


def test_malformed_or_hostile_files_are_refused(
    test_sample: CIFAR10Tensors, tmp_path: Path, capsys: Any
) -> None:
    doc, _ = make_result("attack", "relu-nat", test_sample, **SMALL["attack"])
    for field, value, message in _hostile(doc):
        bad = json.loads(json.dumps(doc))
        bad["provenance"][field] = value
        with pytest.raises(ProvenanceError, match=message.replace("(", r"\(")):
            reproduce(bad)
    bad = json.loads(json.dumps(doc))
    bad["check"][0]["values"] = ["1"] * len(bad["check"][0]["values"])
    with pytest.raises(ProvenanceError, match="not numbers"):
        reproduce(bad)
    bad["check"] = [{"name": "clean logits", "shape": [10**9], "values": []}]
    with pytest.raises(ProvenanceError, match="do not fill its shape"):
        reproduce(bad)
    with pytest.raises(ProvenanceError, match="no provenance block"):
        reproduce({"eps": 0.031})
    # files: not JSON, not an object, too large, a folder — exit 2, a one-line reason
    cases = {
        "garbage.json": b"\x00\xff not json",
        "list.json": b"[1, 2]",
        "deep.json": b"[" * 100_000 + b"]" * 100_000,
    }
    for fname, content in cases.items():
        (tmp_path / fname).write_bytes(content)
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(40 * 2**20)  # sparse: 40 MiB without writing them
    for fname in [*cases, "big.json", "."]:
        assert main(["reproduce", str(tmp_path / fname)]) == 2, fname
        err = capsys.readouterr().err
        assert err.startswith("kwta reproduce: refused:") and err.count("\n") == 1, err
    with pytest.raises(ProvenanceError, match="at most 32 MiB"):
        read_document(big)
