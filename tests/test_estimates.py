"""kwta.explorer.estimates: a job's expected time from units timed on this machine."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kwta.data import CIFAR10Tensors
from kwta.explorer import estimates


def test_a_unit_is_timed_once_per_key() -> None:
    calls: list[int] = []

    def unit() -> None:
        calls.append(1)
        sum(range(20_000))

    key = ("test-unit", object())
    first = estimates.unit_seconds(key, unit, tries=3)
    assert len(calls) == 3 and 0 < first < math.inf
    assert estimates.unit_seconds(key, unit) == first and len(calls) == 3  # remembered
    estimates.unit_seconds(("test-unit", "other"), unit, tries=1)
    assert len(calls) == 4


def test_model_units_on_real_models_leave_them_untouched(
    relu_model: nn.Module, kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    """A PGD step and a forward pass per image, timed on real models and a real image: positive,
    finite, the step dearer than one image of a batched forward; no parameter's gradient
    changes and the weights stay as they were (models are shared by every session)."""
    x, _ = test_sample.tensors([3])
    for name, model in (("relu", relu_model), ("kwta", kwta_model)):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
        step = estimates.gradient_step_seconds(model, x, key=("test", name))
        image = estimates.forward_image_seconds(model, x[0], key=("test", name))
        assert 0 < image < step < 10
        for g, p in zip(grads, model.parameters(), strict=True):
            assert (g is None and p.grad is None) or torch.equal(g, p.grad)  # type: ignore[arg-type]
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_pages_estimates_add_up() -> None:
    attack = estimates.attack_estimate([0.02, 0.05], 40)
    assert attack.units == 82 and attack.seconds == pytest.approx(41 * 0.07)
    assert attack.longest_s == pytest.approx(41 * 0.05)  # one job per model, capped each
    assert attack.exceeds(2.0) and not attack.exceeds(2.1) and not attack.exceeds(None)
    assert attack.text() == "about 2.9 s (82 PGD steps × 35 ms, timed on this server)"
    land = estimates.landscape_estimate([0.001], 21)
    assert land.units == 441 and land.seconds == pytest.approx(0.441)
    toy = estimates.toy_estimate(0.01, 0.5, 10_000)
    assert toy.units == 20_000 and toy.seconds == pytest.approx(200.5)
    assert toy.text() == "about 3 min (20,000 Adam steps × 10 ms + 0.5 s, timed on this server)"
    query = estimates.query_estimate(0.004, 4000)
    assert query.text().startswith("at most about 16 s (4,000 queries × 4 ms")
    assert estimates.attack_estimate([], 40).units == 0
    path = estimates.path_estimate([0.02, 0.05], [0.001, 0.002], 40, 11)
    assert path.seconds == pytest.approx(41 * 0.07 + 121 * 0.003)
    assert path.longest_s == pytest.approx(41 * 0.05 + 121 * 0.002)  # one job per model
    assert path.text().startswith("about 3.2 s (82 PGD steps × 35 ms + 242 grid points × 2 ms")


def test_the_toy_fit_is_timed_at_its_own_sizes() -> None:
    """A wider, deeper fit costs more per Adam step than a small one; with no steps the
    estimate is the fixed part (evaluation and jump search) alone."""
    small, small_fixed = estimates.toy_step_seconds(n_points=8, width=16, depth=1, ratio=0.1)
    big, _ = estimates.toy_step_seconds(n_points=64, width=512, depth=4, ratio=0.1)
    assert 0 < small < big and small_fixed > 0
    assert estimates.toy_estimate(small, small_fixed, 0).seconds == small_fixed
