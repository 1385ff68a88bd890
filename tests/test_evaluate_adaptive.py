"""The adaptive evaluation (``evaluate_adaptive``, cards, CLI) and the page's helpers; the
per-image masks every evaluation records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kwta.attacks._core import is_correct, robust_accuracy, traced
from kwta.attacks.registry import get_attack, max_queries, run_attack
from kwta.attacks.sign_gradient import pgd_linf
from kwta.data import CIFAR10Tensors
from kwta.evaluation.adaptive import evaluate_adaptive
from kwta.evaluation.report import format_table, update_card
from kwta.evaluation.robust import evaluate, pack_mask, scored_attack, unpack_mask
from kwta.explorer.adaptive import (
    adaptive_attack_with_trace,
    budget_schedule,
    margin_curve,
    robustness_rows,
)
from kwta.zoo.hub import save_model

FAST = {
    "apgd-ce": {"steps": 10},
    "square": {"queries": 50},
    "fd-pgd": {"steps": 4, "samples": (4, 8)},
}


@pytest.fixture(scope="module")
def adaptive_result(kwta_model: nn.Module, relu_model: nn.Module, test_sample: CIFAR10Tensors):
    return evaluate_adaptive(
        kwta_model,
        test_sample,
        attacks=list(FAST),
        n=20,
        twin=relu_model,
        twin_name="relu-twin",
        overrides=FAST,
        device="cpu",
    )


def test_masks_round_trip() -> None:
    mask = torch.rand(1003, generator=torch.Generator().manual_seed(0)) < 0.3
    packed = pack_mask(mask)
    assert len(packed) == 2 * 126 and torch.equal(unpack_mask(packed, 1003), mask)
    assert torch.equal(unpack_mask(packed, 17), mask[:17])
    assert pack_mask(torch.tensor([True] + [False] * 7 + [True])) == "8080"
    with pytest.raises(ValueError, match="holds 16 bits"):
        unpack_mask("8080", 17)


def test_evaluation_records_each_images_outcome_and_its_first_batch_reproduces(
    kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    """``robust_mask`` is the per-image outcome behind each count, and attacking the first
    batch alone reproduces it image by image (how the slow card test checks a card)."""
    r = evaluate(kwta_model, test_sample, attacks=["pgd"], n=20, clean_n=50, batch_size=8)
    entry = r["attacks"]["pgd"]
    mask = unpack_mask(entry["robust_mask"], 20)
    assert int(mask.sum()) == entry["robust"]
    x, y = test_sample.tensors(r["subset"]["indices"])
    x_adv = run_attack(
        "pgd", kwta_model, x, y, batch_size=8, generator=torch.Generator().manual_seed(0)
    )
    survived = is_correct(kwta_model, x, y, batch_size=8) & is_correct(
        kwta_model, x_adv, y, batch_size=8
    )
    assert torch.equal(mask, survived)
    ok_clean = is_correct(kwta_model, x[:8], y[:8], batch_size=8)
    ok, _ = scored_attack(
        "pgd", kwta_model, x[:8], y[:8], ok_clean, entry["settings"],
        seed=0, batch_size=8, progress=False,
    )  # fmt: skip
    assert torch.equal(ok, mask[:8])


def test_evaluate_adaptive_scores_every_attack(
    adaptive_result, kwta_model: nn.Module, relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    r = adaptive_result
    assert list(r["attacks"]) == ["pgd", "apgd-ce", "square", "fd-pgd", "transfer"]
    assert [v["kind"] for v in r["attacks"].values()] == [
        "standard",
        "adaptive",
        "adaptive",
        "adaptive",
        "transfer",
    ]
    accs = {k: v["accuracy"] for k, v in r["attacks"].items()}
    assert r["A_rob_adaptive"] == min(accs.values())
    assert accs[r["worst_attack"]] == r["A_rob_adaptive"]
    assert r["A_rob_adaptive_per_image"] <= r["A_rob_adaptive"] <= r["clean_accuracy"]
    assert r["standard_pgd"] == accs["pgd"]
    assert r["attacks"]["transfer"]["source"] == "relu-twin" and r["twin"] == "relu-twin"
    for name, v in r["attacks"].items():
        assert v["max_linf"] <= 0.031 + 1e-6
        assert v["n"] == 20 and 0 <= v["robust"] <= 20
        if name != "transfer":
            assert v["max_queries_per_image"] == max_queries(name, v["settings"])
    assert r["attacks"]["square"]["max_queries_per_image"] == 50
    # the standard PGD entry is the library's PGD on the same images, same seed
    x, y = test_sample.tensors(test_sample.balanced_indices(20, seed=0))
    x_adv = run_attack("pgd", kwta_model, x, y, generator=torch.Generator().manual_seed(0))
    assert accs["pgd"] == pytest.approx(robust_accuracy(kwta_model, x, y, x_adv))
    # the transfer entry: PGD on the twin, scored on the k-WTA model
    x_tr = run_attack("pgd", relu_model, x, y, generator=torch.Generator().manual_seed(0))
    assert accs["transfer"] == pytest.approx(robust_accuracy(kwta_model, x, y, x_tr))


def test_cards_gain_adaptive_numbers(
    adaptive_result, kwta_model: nn.Module, test_sample: CIFAR10Tensors, tmp_path: Path
) -> None:
    card = {
        "name": "k",
        "arch": "resnet18",
        "arch_kwargs": {"width": 8, "act": "kwta", "act_kwargs": {"ratio": 0.2}},
        "training": {"method": "natural"},
    }
    save_model(kwta_model, tmp_path / "k.safetensors", card)
    result = evaluate(kwta_model, test_sample, attacks=["pgd"], n=20, clean_n=100, device="cpu")
    result["adaptive"] = adaptive_result
    written = update_card(tmp_path / "k.json", result, command="test")
    ad = written["metrics"]["adaptive"]
    assert ad["n"] == 20 and ad["A_rob_adaptive"] == adaptive_result["A_rob_adaptive"]
    assert ad["robust_accuracy"]["fd-pgd"] == adaptive_result["attacks"]["fd-pgd"]["accuracy"]
    assert ad["max_queries_per_image"]["square"] == 50
    assert written["evaluation_adaptive"]["command"] == "test"
    assert "adaptive attacks" in format_table(result)
    # an adaptive-only run keeps the standard numbers of the card
    before = written["metrics"]["robust_accuracy"]
    only = evaluate(kwta_model, test_sample, attacks=[], n=20, clean_n=100, device="cpu")
    only["adaptive"] = adaptive_result
    again = update_card(tmp_path / "k.json", only)
    assert again["metrics"]["robust_accuracy"] == before
    assert again["metrics"]["adaptive"] == ad
    # a new standard evaluation without restarts drops an older one's restarts: a card's
    # metrics come from one evaluation
    with_restarts = evaluate(
        kwta_model, test_sample, attacks=["pgd"], n=20, clean_n=100, restarts=1, device="cpu"
    )
    assert "pgd_restarts" in update_card(tmp_path / "k.json", with_restarts)["metrics"]
    assert "pgd_restarts" not in update_card(tmp_path / "k.json", result)["metrics"]
    again = update_card(tmp_path / "k.json", only)
    # the zoo table reads it
    rows = robustness_rows({"k": again})
    assert rows[0].adaptive == ad["A_rob_adaptive"] and rows[0].adaptive_n == 20
    assert rows[0].paper_pgd == pytest.approx(0.042)  # Table 1, natural k-WTA-0.2
    assert rows[0].masked == pytest.approx(ad["standard_pgd"] - ad["A_rob_adaptive"])


def test_budget_schedule_fits_and_is_largest() -> None:
    for budget, steps, est in ((4000, 20, "fd"), (1000, 10, "eot"), (20_000, 100, "fd")):
        start, end = budget_schedule(budget, steps, estimator=est)
        name = "fd-pgd" if est == "fd" else "eot-pgd"
        assert end == 10 * start
        assert max_queries(name, {"steps": steps, "samples": (start, end)}) <= budget
        bigger = (start + 1, 10 * (start + 1))
        assert max_queries(name, {"steps": steps, "samples": bigger}) > budget
    with pytest.raises(ValueError, match="too small"):
        budget_schedule(10, 50)
    with pytest.raises(ValueError, match="estimator"):
        budget_schedule(1000, 10, estimator="magic")  # type: ignore[arg-type]


def test_adaptive_attack_with_trace_on_one_image(
    kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, y = test_sample.tensors([3])
    run = adaptive_attack_with_trace(
        kwta_model, x[0], int(y), eps=0.031, alpha=0.005, steps=6, sigma=8 / 255, samples=(4, 40)
    )
    assert run.attack == "fd_pgd_linf" and run.queries is not None and run.queries > 0
    assert run.trace.logits.shape == (7, 1, 10)
    assert float((run.x_adv - run.x).abs().max()) <= 0.031 + 1e-6
    with torch.no_grad():
        assert int(kwta_model(run.x_adv).argmax()) == run.adv_pred == int(run.trace.pred[-1, 0])
    margin = margin_curve(run.trace)
    logits = run.trace.logits[:, 0].numpy()
    other = np.delete(logits, int(y), axis=1).max(axis=1)
    assert np.allclose(margin, other - logits[:, int(y)])
    assert (margin[-1] > 0) == run.success or run.clean_pred != run.label
    d = run.to_dict()
    assert d["attack"] == "fd_pgd_linf" and d["queries"] == run.queries
    assert d["settings"]["estimator"] == "fd"
    with pytest.raises(ValueError, match="estimator"):
        adaptive_attack_with_trace(
            kwta_model, x, int(y), estimator="x", eps=0.03, alpha=0.01, steps=1, sigma=0.03,
            samples=2,
        )  # type: ignore[arg-type]  # fmt: skip


def test_run_attack_knows_the_adaptive_attacks(
    relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, y = test_sample.tensors(test_sample.balanced_indices(8, seed=0))
    seen: list[tuple[int, int]] = []
    x_adv = run_attack(
        "apgd-ce",
        relu_model,
        x,
        y,
        batch_size=4,
        steps=5,
        generator=torch.Generator().manual_seed(0),
        callback=lambda d, t: seen.append((d, t)),
    )
    assert float((x_adv - x).abs().max()) <= get_attack("apgd-ce").defaults["eps"] + 1e-6
    assert seen[-1][0] == seen[-1][1]
    with pytest.raises(ValueError, match="adaptive"):
        run_attack("no-such-attack", relu_model, x, y)
    # a plain PGD still runs through the same entry point
    ref = pgd_linf(
        relu_model, x, y, eps=0.031, alpha=0.003, steps=40,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    got = run_attack("pgd", relu_model, x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ref, got)


@pytest.mark.parametrize("name", ["apgd-ce", "square", "fd-pgd", "eot-pgd"])
def test_max_queries_is_what_a_resisting_image_spends(
    name: str, relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    """The card's per-image ceiling is the count the attack's own trace records for an
    image the attack never breaks (an ε far too small to flip a confident prediction)."""
    settings = {
        **get_attack(name).defaults,
        **{"apgd-ce": {"steps": 6, "restarts": 2}, "square": {"queries": 30}}.get(name, {}),
        **({"steps": 3, "samples": (2, 5)} if name in ("fd-pgd", "eot-pgd") else {}),
        "eps": 1e-4,
    }
    x, y = test_sample.tensors(range(100))
    with torch.no_grad():
        logits = relu_model(x)
    top2 = logits.topk(2, dim=1).values
    margin = torch.where(logits.argmax(1) == y, top2[:, 0] - top2[:, 1], -1.0)
    keep = margin.topk(3).indices  # the three most confidently correct images
    assert (margin[keep] > 0).all()
    _, trace = traced(get_attack(name).fn)(
        relu_model, x[keep], y[keep], **settings,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert trace.queries is not None
    assert (trace.pred[-1] == y[keep]).all()  # nothing broken: the whole budget is spent
    assert (trace.queries[-1] == max_queries(name, settings)).all(), trace.queries[-1]


def test_twin_is_the_relu_model_of_the_same_shape_and_training() -> None:
    from kwta.zoo.summary import twin_of

    def card(act: str, method: str, width: int) -> dict:
        kw = {"ratio": 0.1} if act == "kwta" else {}
        return {
            "arch": "resnet18",
            "arch_kwargs": {"width": width, "act": act, "act_kwargs": kw},
            "training": {"method": method},
        }

    cards = {
        "relu-wide": card("relu", "natural", 64),  # first in card order, wrong width
        "relu-at": card("relu", "free", 16),
        "relu-nat": card("relu", "natural", 16),
        "kwta0.1-nat": card("kwta", "natural", 16),
        "kwta0.1-at": card("kwta", "free", 16),
        "kwta-wide-at": card("kwta", "free", 64),
    }
    assert twin_of(cards, "kwta0.1-nat") == "relu-nat"
    assert twin_of(cards, "kwta0.1-at") == "relu-at"
    assert twin_of(cards, "kwta-wide-at") is None  # no width-64 free-AT ReLU model
    assert twin_of(cards, "relu-nat") is None and twin_of(cards, "nope") is None
