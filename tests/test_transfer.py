"""The paper's Table 3 on the zoo: kwta.evaluation.transfer, `kwta transfer`, the zoo page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from app_fixtures import APP_MAIN, KWTA_NAME, RELU_NAME, make_zoo
from streamlit.testing.v1 import AppTest
from torch import nn

from kwta.attacks._core import robust_accuracy
from kwta.attacks.registry import run_attack
from kwta.cli import main
from kwta.data import CIFAR10Tensors
from kwta.evaluation.transfer import (
    TRANSFER_FILE,
    compute_transfer,
    read_transfer,
    write_transfer,
)
from kwta.zoo.hub import list_pretrained
from kwta.zoo.published import PAPER_TABLE3
from kwta.zoo.summary import table3_models


def _cards() -> dict[str, dict[str, str]]:
    return {"relu": {"name": "r", "sha256": "a" * 64}, "kwta": {"name": "k", "sha256": "b" * 64}}


def test_matrix_is_each_sources_pgd_classified_by_each_target(
    relu_model: nn.Module, kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    models = {"relu": relu_model, "kwta": kwta_model}
    done: list[tuple[int, int]] = []
    res = compute_transfer(
        _cards(), models, test_sample, n=20, callback=lambda d, t: done.append((d, t))
    )
    assert done == [(1, 2), (2, 2)]
    assert res["roles"] == ["relu", "kwta"] and res["n"] == 20
    assert res["labels"] == {"relu": "ReLU", "kwta": "k-WTA-0.1"}
    x, y = test_sample.tensors(res["indices"])
    assert torch.bincount(y, minlength=10).tolist() == [2] * 10  # class-balanced
    for s_name, source in models.items():
        x_adv = run_attack("pgd", source, x, y, generator=torch.Generator().manual_seed(0))
        assert torch.all((x_adv - x).abs() <= res["settings"]["eps"] + 1e-6)
        for t_name, target in models.items():
            assert res["matrix"][t_name][s_name] == robust_accuracy(target, x, y, x_adv)
    with torch.no_grad():
        assert res["clean"]["relu"] == float((relu_model(x).argmax(1) == y).double().mean())
    assert res["paper"]["relu"]["kwta"] == PAPER_TABLE3["relu"]["kwta"] == 0.755
    assert "/" not in res["data"].split(":", 1)[-1]  # no machine path in a shipped file
    json.dumps(res)  # JSON-ready


def test_results_file_is_read_only_for_the_same_weights(tmp_path: Path) -> None:
    res = {"format": 1, "models": _cards(), "matrix": {}}
    write_transfer(res, tmp_path)
    assert read_transfer(tmp_path, _cards()) == res
    other = _cards()
    other["kwta"]["sha256"] = "c" * 64  # retrained: the numbers no longer apply
    assert read_transfer(tmp_path, other) is None
    (tmp_path / TRANSFER_FILE).write_text(json.dumps(res | {"format": 99}))
    assert read_transfer(tmp_path, _cards()) is None
    (tmp_path / TRANSFER_FILE).write_text("{not json")
    assert read_transfer(tmp_path, _cards()) is None
    assert read_transfer(tmp_path / "missing", _cards()) is None


def test_bad_roles_are_refused(kwta_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    one = {"kwta": _cards()["kwta"]}
    with pytest.raises(ValueError, match="at least two"):
        compute_transfer(one, {"kwta": kwta_model}, test_sample, n=4)
    odd = _cards() | {"vgg": {"name": "v", "sha256": "d" * 64}}
    with pytest.raises(ValueError, match="at least two"):
        compute_transfer(odd, dict.fromkeys(odd, kwta_model), test_sample, n=4)


def _table3_zoo(tmp_path: Path, relu_model: nn.Module, kwta_model: nn.Module) -> Path:
    """The test zoo with its k-WTA card at γ = 0.1 (Table 3's k-WTA) and an AT ReLU copy."""
    zoo = make_zoo(tmp_path / "zoo", relu_model, kwta_model)
    card_path = zoo / f"{KWTA_NAME}.json"
    card = json.loads(card_path.read_text())
    card["arch_kwargs"]["act_kwargs"]["ratio"] = 0.1
    card_path.write_text(json.dumps(card))
    at = json.loads((zoo / f"{RELU_NAME}.json").read_text())
    at["name"], at["weights"] = "relu-at-copy", "relu-at-copy.safetensors"
    at["training"]["method"] = "fgsm"
    (zoo / "relu-at-copy.json").write_text(json.dumps(at))
    shutil.copy(zoo / f"{RELU_NAME}.safetensors", zoo / "relu-at-copy.safetensors")
    return zoo


def test_cli_writes_the_file_the_zoo_page_reads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    relu_model: nn.Module,
    kwta_model: nn.Module,
) -> None:
    zoo = _table3_zoo(tmp_path, relu_model, kwta_model)
    monkeypatch.setenv("KWTA_PRETRAINED", str(zoo))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    cards = list_pretrained(zoo)
    roles = table3_models(cards)
    assert roles == {
        "relu": RELU_NAME,
        "kwta": KWTA_NAME,
        "relu_at": "relu-at-copy",
        "kwta_at": None,
    }
    assert main(["transfer", "--n", "10", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"| ReLU ({RELU_NAME}) |" in out
    assert "diagonal = white-box" in out
    res = read_transfer(zoo, {r: cards[str(n)] for r, n in roles.items() if n})
    assert res is not None and res["roles"] == ["relu", "kwta", "relu_at"] and res["n"] == 10
    # the AT "copy" has the ReLU model's weights: the same examples, the same numbers
    assert res["matrix"]["relu"]["relu"] == res["matrix"]["relu_at"]["relu"]
    # the Model zoo page shows our matrix beside the paper's
    at = AppTest.from_file(str(APP_MAIN), default_timeout=120)
    at.run()
    at.switch_page("views/zoo.py").run()
    assert not at.exception
    ours, paper = at.dataframe[-2].value, at.dataframe[-1].value  # the page's last two tables
    assert list(ours.columns)[1:] == ["ReLU", "k-WTA-0.1", "ReLU (AT)"]
    assert ours.iloc[1]["ReLU"] == f"{res['matrix']['kwta']['relu']:.1%}"
    assert paper.iloc[0]["k-WTA-0.1"] == "75.5%"
    assert any("white-box" in c.value for c in at.caption)
    # fewer than two of Table 3's kinds: a clear refusal, no file
    only = tmp_path / "only"
    only.mkdir()
    for f in (f"{RELU_NAME}.json", f"{RELU_NAME}.safetensors"):
        shutil.copy(zoo / f, only / f)
    monkeypatch.setenv("KWTA_PRETRAINED", str(only))
    with pytest.raises(SystemExit) as err:
        main(["transfer", "--n", "10", "--quiet"])
    assert err.value.code == 2
    assert "need at least two" in capsys.readouterr().err
    assert not (only / TRANSFER_FILE).exists()
