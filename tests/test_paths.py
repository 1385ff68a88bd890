"""PGD's walk on its own loss plane, step by step (:mod:`kwta.explorer.paths`), on real
CIFAR-10 images and the trained fixture models."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from torch import nn

from kwta.analysis.attack_plane import attack_plane
from kwta.analysis.patterns import activation_patterns
from kwta.data import CIFAR10Tensors
from kwta.explorer.paths import attack_path, path_pattern_change, path_records
from kwta.explorer.runs import attack_with_trace, records_to_csv

EPS = 0.031
IMAGE = 7


@pytest.mark.parametrize("which", ["relu", "kwta"])
def test_the_path_is_the_attack_its_plane_and_its_patterns(
    relu_model: nn.Module, kwta_model: nn.Module, test_sample: CIFAR10Tensors, which: str
) -> None:
    """The path's run is exactly the traced attack, its plane exactly attack_plane on that
    walk, the walk starts at the origin with no pattern changed; progress runs through the
    attack's steps, then the grid's points, to the end; the model is untouched."""
    model = relu_model if which == "relu" else kwta_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = test_sample.tensors([IMAGE])
    seen: list[tuple[int, int]] = []
    p = attack_path(
        model, x[0], int(y[0]), eps=EPS, alpha=0.005, steps=8, grid=5, seed=2,
        callback=lambda d, t: seen.append((d, t)),
    )  # fmt: skip
    run = attack_with_trace(model, x[0], int(y[0]), eps=EPS, alpha=0.005, steps=8, keep_path=True)
    assert torch.equal(p.run.x_adv, run.x_adv) and torch.equal(p.run.trace.logits, run.trace.logits)
    assert run.path is not None
    ref = attack_plane(model, x[0], int(y[0]), run.path, eps=EPS, grid=5, seed=2)
    assert torch.equal(p.plane.loss, ref.loss) and torch.equal(p.plane.path, ref.path)
    assert torch.equal(p.plane.path[0], torch.zeros(2))
    assert p.changed.shape == (9,) and float(p.changed[0]) == 0.0
    assert float(p.changed.max()) > 0  # the walk changes the pattern somewhere
    assert seen[-1] == (8 + 25, 8 + 25) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert torch.equal(p.logits(3), run.trace.logits[3, 0])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_pattern_change_along_the_path_is_the_masks_own(
    kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    """At each step: |A(x) Δ A(x+δ_t)| / (|A(x)| + |A(x+δ_t)|) over all layers, recomputed
    from the masks of the two images."""
    x, y = test_sample.tensors([IMAGE])
    run = attack_with_trace(kwta_model, x, int(y[0]), eps=EPS, alpha=0.005, steps=4, keep_path=True)
    assert run.path is not None
    changed = path_pattern_change(kwta_model, run.x, run.path)
    for t in (0, 2, 4):
        a = activation_patterns(kwta_model, run.x)
        b = activation_patterns(kwta_model, (run.x + run.path[t]).clamp(0, 1))
        sym = sum(int((a[k] ^ b[k]).sum()) for k in a)
        tot = sum(int(a[k].sum()) + int(b[k].sum()) for k in a)
        assert float(changed[t]) == pytest.approx(sym / tot)


def test_records_and_json_hold_every_step(
    relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, y = test_sample.tensors([IMAGE])
    p = attack_path(relu_model, x, int(y[0]), eps=EPS, alpha=0.005, steps=5, grid=3)
    rows = path_records(p)
    assert [r["step"] for r in rows] == list(range(6))
    assert rows[0]["a"] == rows[0]["b"] == 0.0 and rows[0]["pattern_changed"] == 0.0
    assert [r["pred"] for r in rows] == p.run.trace.pred[:, 0].tolist()
    table = list(csv.DictReader(io.StringIO(records_to_csv(rows))))
    assert len(table) == 6 and float(table[5]["loss"]) == pytest.approx(float(p.plane.path_loss[5]))
    data = json.loads(json.dumps(p.to_dict()))
    assert len(data["steps"]) == 6 and len(data["plane"]["loss"]) == 3
    assert data["attack"]["steps"] == 5


def test_an_attack_that_never_moves_is_refused(
    relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, y = test_sample.tensors([IMAGE])
    with pytest.raises(ValueError, match="never left"):
        attack_path(relu_model, x, int(y[0]), eps=EPS, alpha=0.0, steps=3, grid=3)
    with pytest.raises(ValueError, match="steps"):
        attack_path(relu_model, x, int(y[0]), eps=EPS, alpha=0.01, steps=0)
