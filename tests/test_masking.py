"""Gradient-masking indicators on the shipped ReLU and k-WTA models, on real test images."""

from __future__ import annotations

import pytest
import torch

import kwta
from kwta.analysis.masking import THRESHOLDS, masking_indicators
from kwta.attacks.sign_gradient import pgd_linf
from kwta.data import CIFAR10Tensors


@pytest.fixture(scope="module")
def batch(test_sample: CIFAR10Tensors) -> tuple[torch.Tensor, torch.Tensor]:
    return test_sample.tensors(test_sample.balanced_indices(64, seed=0))


@pytest.fixture(scope="module")
def shipped() -> dict[str, torch.nn.Module]:
    names = ("relu-nat", "kwta0.1-nat", "relu-at", "kwta0.1-at")
    return {name: kwta.load_pretrained(name) for name in names}


@pytest.fixture(scope="module")
def reports(shipped, batch):
    x, y = batch
    return {
        name: masking_indicators(
            model, x, y, square_queries=100, generator=torch.Generator().manual_seed(0)
        )
        for name, model in shipped.items()
    }


def test_indicators_flag_kwta_and_not_relu(reports) -> None:
    for relu, kw in (("relu-nat", "kwta0.1-nat"), ("relu-at", "kwta0.1-at")):
        r, k = reports[relu], reports[kw]
        assert not r.suspected, r.to_dict()
        assert k.suspected, k.to_dict()
        # PGD's own loss going down on k-WTA, well past the threshold; never on ReLU
        assert k["loss_not_increasing"].value > 2 * THRESHOLDS["loss_not_increasing"]
        assert r["loss_not_increasing"].value < THRESHOLDS["loss_not_increasing"] / 2
        assert r["noise_instability"].value < k["noise_instability"].value
    # the adversarially trained k-WTA model shows every symptom but zero gradients
    at = reports["kwta0.1-at"]
    assert at["blackbox_beats_whitebox"].flagged and at["noise_instability"].flagged


def test_report_is_consistent(reports, batch) -> None:
    x, _ = batch
    for rep in reports.values():
        assert rep.n == len(x)
        assert 0 < rep.n_correct <= rep.n
        assert [i.key for i in rep.indicators] == list(THRESHOLDS)
        for ind in rep.indicators:
            assert 0.0 <= ind.value <= 1.0
            assert ind.flagged == (ind.value > ind.threshold)
            assert ind.detail
        assert 0 <= rep.whitebox_robust <= rep.n_correct
        assert rep.blackbox.startswith("Square")
        d = rep.to_dict()
        assert d["suspected"] == rep.suspected
        assert len(d["indicators"]) == len(THRESHOLDS) == 5


def test_relu_pgd_breaks_everything_it_should(reports) -> None:
    # the ReLU model's white-box PGD leaves nothing for the black-box attack to beat
    relu = reports["relu-nat"]
    assert relu.whitebox_robust <= relu.blackbox_robust


def test_given_blackbox_batch_is_scored(shipped, batch) -> None:
    """A transfer attack from the ReLU twin as the black-box attack."""
    x, y = batch
    x_bb = pgd_linf(
        shipped["relu-nat"],
        x,
        y,
        eps=0.031,
        alpha=0.003,
        steps=10,
        generator=torch.Generator().manual_seed(1),
    )
    rep = masking_indicators(
        shipped["kwta0.1-nat"],
        x,
        y,
        blackbox_adv=x_bb,
        blackbox_name="transfer from relu-nat",
        generator=torch.Generator().manual_seed(0),
    )
    assert rep.blackbox == "transfer from relu-nat"
    ok = shipped["kwta0.1-nat"](x).argmax(1) == y
    adv_ok = shipped["kwta0.1-nat"](x_bb).argmax(1) == y
    assert rep.blackbox_robust == int((ok & adv_ok).sum())


def test_seeded_and_model_untouched(shipped, batch) -> None:
    x, y = batch
    model = shipped["kwta0.1-nat"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = masking_indicators(
        model, x[:16], y[:16], square_queries=20, generator=torch.Generator().manual_seed(3)
    )
    b = masking_indicators(
        model, x[:16], y[:16], square_queries=20, generator=torch.Generator().manual_seed(3)
    )
    assert a == b
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_progress_reaches_the_end(shipped, batch) -> None:
    x, y = batch
    seen: list[tuple[int, int]] = []
    masking_indicators(
        shipped["relu-nat"],
        x[:8],
        y[:8],
        pgd_steps=3,
        noise_draws=2,
        square_queries=5,
        generator=torch.Generator().manual_seed(0),
        callback=lambda d, t: seen.append((d, t)),
    )
    assert seen and seen[-1][0] == seen[-1][1]
    assert all(d <= t for d, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize(
    "kw, msg",
    [
        ({"eps": -0.1}, "eps"),
        ({"noise": -1.0}, "noise"),
        ({"noise_draws": 0}, "noise_draws"),
    ],
)
def test_bad_arguments(shipped, batch, kw, msg) -> None:
    x, y = batch
    with pytest.raises(ValueError, match=msg):
        masking_indicators(shipped["relu-nat"], x[:2], y[:2], **kw)


def test_blackbox_outside_ball_is_refused(shipped, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match="ε-ball"):
        masking_indicators(
            shipped["relu-nat"], x[:2], y[:2], blackbox_adv=(x[:2] + 0.1).clamp(0, 1)
        )


class _Noisy(torch.nn.Module):
    """A randomised defence: the shipped ReLU network behind input noise at every call."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner((x + 0.01 * torch.randn_like(x)).clamp(0, 1))


def test_randomness_is_flagged_only_for_a_randomised_model(reports, shipped, batch) -> None:
    """AutoAttack's check_randomized: the same images evaluated twice."""
    assert all(rep["randomness"].value == 0.0 for rep in reports.values())
    x, y = batch
    gen = torch.Generator().manual_seed(0)
    model = _Noisy(shipped["relu-nat"])
    noisy = masking_indicators(model, x[:16], y[:16], square_queries=10, pgd_steps=2, generator=gen)
    assert noisy["randomness"].flagged and noisy["randomness"].value == 1.0
    assert noisy.suspected
