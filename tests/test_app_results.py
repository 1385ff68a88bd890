"""Every page's result download reproduces outside the app (issue #35).

Each page runs through AppTest on the test zoo (two small real networks) and a bundled
test image or an upload; its "… JSON" download is rerun by ``kwta reproduce`` (exact on
this CPU) and its "Python" download runs in a subprocess and prints the same numbers.
The download bytes are the real ones Streamlit serves: the test keeps a copy of every
file the app hands to its media storage.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from app_fixtures import APP_MAIN, KWTA_NAME, RELU_NAME
from PIL import Image

pytest.importorskip("streamlit")
import streamlit.testing.v1.app_test as app_test_module
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from kwta.cli import main
from kwta.explorer.scripts import script_prints

TIMEOUT = 180


class KeptMedia(MemoryMediaFileStorage):
    """Streamlit's in-memory media storage, keeping a copy of every file (by id) after
    the run that made it."""

    files: ClassVar[dict[str, bytes]] = {}

    def load_and_get_id(
        self, path_or_data: Any, mimetype: str, kind: Any, filename: Any = None
    ) -> str:
        file_id = super().load_and_get_id(path_or_data, mimetype, kind, filename)
        KeptMedia.files[file_id] = self.get_file(file_id).content
        return file_id


@pytest.fixture
def app_env(zoo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KWTA_PRETRAINED", str(zoo))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", KeptMedia)
    return zoo


def open_page(page: str, **params: Any) -> AppTest:
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT)
    at.run()
    at.query_params = {k: str(v) for k, v in params.items()} | {"run": "1"}
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def downloads(at: AppTest, label: str) -> list[bytes]:
    """The bytes of every download button called ``label``, in page order."""
    out = []
    for button in at.get("download_button"):
        if button.proto.label == label:
            file_id = button.proto.url.rsplit("/", 1)[-1].split(".")[0]
            out.append(KeptMedia.files[file_id])
    return out


def check_reproduces(doc: bytes, script: bytes, tmp_path: Path, zoo: Path, capsys: Any) -> None:
    """``kwta reproduce`` reruns the JSON exactly; the script prints the same summary."""
    result = json.loads(doc)
    path = tmp_path / "result.json"
    path.write_bytes(doc)
    capsys.readouterr()
    assert main(["reproduce", str(path), "--json", str(tmp_path / "cmp.json")]) == 0
    out = capsys.readouterr().out
    assert "compared exactly" in out and out.rstrip().endswith("Reproduced."), out
    assert json.loads((tmp_path / "cmp.json").read_text())["exact"] is True
    src = tmp_path / "result.py"
    src.write_bytes(script)
    env = os.environ | {"KWTA_PRETRAINED": str(zoo)}
    ran = subprocess.run(
        [sys.executable, str(src)], capture_output=True, text=True, env=env, timeout=300
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    printed = dict(ln.split(": ", 1) for ln in ran.stdout.splitlines() if ": " in ln)
    summary = result["summary"]
    assert list(printed) == list(summary) == script_prints(result["provenance"]["action"])
    assert printed == {k: str(v) for k, v in summary.items()}


@pytest.mark.parametrize(
    ("page", "params", "label", "action", "settings"),
    [
        (
            "attack",
            {"atk_steps": 6, "atk_b": "(none)", "atk_img": "index", "atk_idx": 7, "atk_rs": "true"},
            "Result JSON",
            "attack",
            {"steps": 6, "random_start": True},
        ),
        (
            "landscape",
            {"ls_grid": 5, "ls_models": KWTA_NAME, "ls_img": "index", "ls_idx": 3, "ls_seed": 2},
            "Grid JSON",
            "landscape",
            {"grid": 5, "seed": 2},
        ),
        (
            "attack_path",
            {"path_steps": 4, "path_grid": 5, "path_img": "index", "path_idx": 9},
            "Plane and path JSON",
            "attack_path",
            {"steps": 4, "grid": 5},
        ),
        (
            "toy_fit",
            {"toy_steps": 80, "toy_width": 16, "toy_n": 5, "toy_seed": 2},
            "Fit JSON (points, curves, jumps)",
            "toy",
            {"steps": 80, "width": 16, "n_points": 5, "seed": 2},
        ),
        (
            "patterns",
            {"pat_img": "index", "pat_idx": 6, "pat_dirs": 1, "pat_gammas": "0.5", "pat_seed": 3},
            "Patterns JSON",
            "patterns",
            {"n_dirs": 1, "seed": 3, "ratios": [0.5]},
        ),
    ],
    ids=["attack", "landscape", "attack_path", "toy_fit", "patterns"],
)
def test_a_page_result_reproduces(
    app_env: Path,
    tmp_path: Path,
    capsys: Any,
    page: str,
    params: dict[str, Any],
    label: str,
    action: str,
    settings: dict[str, Any],
) -> None:
    at = open_page(page, **params)
    docs, scripts = downloads(at, label), downloads(at, "Python")
    assert docs and len(docs) == len(scripts)
    for doc, script in zip(docs, scripts, strict=True):
        prov = json.loads(doc)["provenance"]
        assert prov["action"] == action
        assert settings.items() <= prov["settings"].items()
        if action != "toy":
            assert prov["model"]["name"] in (RELU_NAME, KWTA_NAME)
            index = next(v for k, v in params.items() if k.endswith("_idx"))
            assert prov["image"]["split"] == "test" and prov["image"]["index"] == index
        check_reproduces(doc, script, tmp_path, app_env, capsys)


def test_both_attacks_of_the_adaptive_page_reproduce(
    app_env: Path, tmp_path: Path, capsys: Any
) -> None:
    at = open_page(
        "adaptive", adv_img="index", adv_idx=4, adv_pgd_steps=5, adv_steps=3, adv_budget=200
    )
    docs, scripts = downloads(at, "Result JSON"), downloads(at, "Python")
    actions = [json.loads(d)["provenance"]["action"] for d in docs]
    assert actions == ["attack", "adaptive"]
    standard, adaptive = (json.loads(d)["provenance"]["settings"] for d in docs)
    assert standard["random_start"] is True and standard["steps"] == 5
    assert adaptive["steps"] == 3 and adaptive["estimator"] == "fd"
    for doc, script in zip(docs, scripts, strict=True):
        check_reproduces(doc, script, tmp_path, app_env, capsys)


@pytest.mark.slow  # four masking checks (two pages' worth, two scripts): 23 s
def test_the_masking_check_and_the_weight_line_reproduce(
    app_env: Path, tmp_path: Path, capsys: Any
) -> None:
    """Results on a batch of class-balanced test images: the batch is named by size and
    seed, checked by sha256."""
    at = open_page("adaptive", adv_n=8, adv_seed=2, adv_m=KWTA_NAME)
    at.button(key="adv_check").click().run()
    assert not at.exception, [e.value for e in at.exception]
    docs = downloads(at, "Masking check JSON")
    assert len(docs) == 2  # the model and its ReLU twin
    for doc, script in zip(docs, downloads(at, "Python")[-2:], strict=True):
        prov = json.loads(doc)["provenance"]
        assert prov["action"] == "masking" and prov["settings"]["seed"] == 2
        assert prov["batch"]["n"] == 8 and prov["batch"]["seed"] == 2 and prov["image"] is None
        check_reproduces(doc, script, tmp_path, app_env, capsys)
    at = open_page("landscape", ls_grid=3, ls_models=RELU_NAME, ls_wl="true")
    (doc,) = downloads(at, f"Weight line JSON ({RELU_NAME})")
    assert json.loads(doc)["provenance"]["batch"]["n"] == 128
    check_reproduces(doc, downloads(at, "Python")[-1], tmp_path, app_env, capsys)


def test_the_live_gamma_sweep_reproduces(app_env: Path, tmp_path: Path, capsys: Any) -> None:
    at = open_page("zoo")
    at.button(key="zoo_gamma_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (doc,) = downloads(at, "γ sweep JSON")
    prov = json.loads(doc)["provenance"]
    assert prov["action"] == "gamma" and prov["settings"]["ratios"][0] == 0.2
    assert prov["batch"]["n"] == 200 and prov["model"]["name"] == KWTA_NAME
    check_reproduces(doc, downloads(at, "Python")[-1], tmp_path, app_env, capsys)


def test_an_uploaded_image_travels_with_its_result(
    app_env: Path, tmp_path: Path, capsys: Any
) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    at = open_page("attack", atk_img="upload", atk_steps=3, atk_b="(none)")
    at.sidebar.get("file_uploader")[0].set_value(("mine.png", buf.getvalue(), "image/png")).run()
    at.button(key="atk_run").click().run()
    assert not at.exception
    (doc,), (script,) = downloads(at, "Result JSON"), downloads(at, "Python")
    image = json.loads(doc)["provenance"]["image"]
    assert "pixels" in image and "index" not in image and image["label"] == 3  # "cat"
    check_reproduces(doc, script, tmp_path, app_env, capsys)
