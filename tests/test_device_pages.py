"""The pages' computations as one list (kwta.explorer.actions) and the GPU check script.

``scripts/device_pages.py`` runs every page action on CUDA against the CPU on the
accelerator machine; here it runs in smoke mode (CPU against CPU) on a shipped
k-WTA model, and the comparison itself is shown to catch real differences.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest
from torch import nn

from kwta.data import CIFAR10Tensors
from kwta.explorer.actions import (
    PAGE_ACTIONS,
    ActionInputs,
    Probe,
    compare_probes,
    cross_check,
    get_action,
    own_prediction,
)

ROOT = Path(__file__).resolve().parents[1]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("device_pages", ROOT / "scripts/device_pages.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _inputs(model: nn.Module, data: CIFAR10Tensors, index: int = 2) -> ActionInputs:
    x, y = data.tensors([index])
    xs, ys = data.tensors(data.balanced_indices(32, seed=0))
    return ActionInputs(model, x, int(y), xs, ys)


def test_smoke_run_checks_each_action_and_recovers_from_out_of_memory(tmp_path: Path) -> None:
    dp = _script()
    assert dp.main([str(tmp_path), "--smoke", "--models", "kwta0.1-nat"]) == 0
    res = json.loads((tmp_path / "pages.json").read_text())
    assert res["passed"] is True
    assert [r["action"] for r in res["parity"]] == list(dp.SMOKE_ACTIONS)
    for row in res["parity"]:
        assert row["checks"] and all(c["passed"] for c in row["checks"]), row
        assert row["reference_s"] > 0 and row["device_s"] > 0
    attack = res["parity"][0]
    assert "adversarial prediction, re-evaluated" in [c["name"] for c in attack["checks"]]
    oom = res["oom"]
    assert oom["simulated"] is True  # no GPU here: said so in the report
    assert oom["batches_tried"] == [256, 128, 64]
    assert oom["recovered"] and oom["same_result"]
    assert [r["max_jobs"] for r in res["load"]] == [1, 2]
    for r in res["load"]:
        assert r["worst_wait_s"] == pytest.approx(
            math.ceil(r["users"] / r["max_jobs"]) * r["wave_s"]
        )
    md = (tmp_path / "pages.md").read_text()
    assert "| kwta0.1-nat | Live attack: PGD-40 + trace, 1 image |" in md
    assert "batches tried [256, 128, 64]" in md


def test_comparison_catches_a_different_image(
    kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    action = get_action("attack")
    a = _inputs(kwta_model, test_sample, 2)
    b = _inputs(kwta_model, test_sample, 3)
    same = compare_probes(action.probes(action.run(a), a), action.probes(action.run(a), a))
    assert all(c.passed and c.agree == 1.0 for c in same)
    diff = {
        c.name: c
        for c in compare_probes(action.probes(action.run(a), a), action.probes(action.run(b), b))
    }
    assert not diff["clean logits"].passed
    assert diff["clean logits"].max_abs_diff > 0.01


def test_exact_probe_counts_the_share_that_agrees(
    kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    i = _inputs(kwta_model, test_sample)
    wm, _ = get_action("patterns").run(i)
    mask = wm.clean.detach().cpu()
    flipped = mask.clone().view(-1)
    flipped[0] = ~flipped[0]
    flipped = flipped.view_as(mask)
    n = mask.numel()
    strict = compare_probes([Probe("m", mask, "exact")], [Probe("m", flipped, "exact")])[0]
    assert not strict.passed and strict.agree == pytest.approx(1 - 1 / n)
    loose = compare_probes(
        [Probe("m", mask, "exact", min_agree=1 - 2 / n)], [Probe("m", flipped, "exact")]
    )[0]
    assert loose.passed
    # a missing or renamed probe is an error, not a silent pass
    with pytest.raises(ValueError, match="probe names differ"):
        compare_probes([Probe("m", mask, "exact")], [Probe("other", mask, "exact")])
    shape = compare_probes([Probe("m", mask, "exact")], [Probe("m", mask[:1], "exact")])[0]
    assert not shape.passed


def test_cross_check_classifies_the_adversarial_image_on_the_reference(
    relu_model: nn.Module, kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    i = _inputs(relu_model, test_sample)
    run = get_action("attack").run(i)
    same = compare_probes(own_prediction(run), cross_check(run, relu_model))
    assert same[0].passed
    # Another network's verdict on the same image is a real comparison: on a batch of
    # attacked images the two width-8 models disagree somewhere.
    disagreements = 0
    for idx in range(8):
        r = get_action("attack").run(_inputs(relu_model, test_sample, idx))
        disagreements += not compare_probes(own_prediction(r), cross_check(r, kwta_model))[0].passed
    assert disagreements > 0
    assert cross_check(object(), relu_model) == [] and own_prediction(object()) == []


@pytest.mark.slow
def test_every_page_action_repeats_exactly(
    kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    """The parity check relies on it: every action is seeded, so two CPU runs agree fully."""
    i = _inputs(kwta_model, test_sample)
    for action in PAGE_ACTIONS:  # all of them: a k-WTA model
        checks = compare_probes(action.probes(action.run(i), i), action.probes(action.run(i), i))
        assert checks and all(c.agree == 1.0 for c in checks), (action.key, checks)


def test_actions_are_the_pages_settings() -> None:
    keys = [a.key for a in PAGE_ACTIONS]
    assert len(set(keys)) == len(keys)
    with pytest.raises(KeyError, match="known"):
        get_action("nope")
    source = {p.stem: p.read_text() for p in (ROOT / "app/views").glob("*.py")}
    assert "DEFAULT_BUDGET = min(ADAPTIVE_BUDGET" in source["adaptive"]
    cached = (ROOT / "app/cached/landscape.py").read_text()
    assert "retry_on_oom(compute, LANDSCAPE_BATCH" in cached  # the landscape page's batch
