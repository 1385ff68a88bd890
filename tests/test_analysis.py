"""Tests of :mod:`kwta.analysis` on real CIFAR-10 images and the trained fixture models."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from kwta import KWTA, get_ratio
from kwta.analysis._common import MAX_GRID
from kwta.analysis.landscape import Landscape, loss_landscape
from kwta.analysis.patterns import (
    activation_patterns,
    overlap_summary,
    pattern_change,
    pattern_overlap,
)
from kwta.analysis.theorem1 import theorem1_width_sweep
from kwta.analysis.toy import ToyFit, _find_jumps, toy_fit
from kwta.analysis.weights import gamma_sweep, weight_line
from kwta.data import CIFAR10Tensors
from kwta.nn.functional import k_from_ratio

LANDSCAPE_IMAGES = (0, 50, 100)
LANDSCAPE_GRID = 21


# --------------------------------------------------------------------------- helpers


def _snapshot(model: nn.Module) -> dict[str, object]:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "modes": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "ratio": [m.ratio for m in model.modules() if isinstance(m, KWTA)],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
    }


def _assert_untouched(model: nn.Module, snap: dict[str, object]) -> None:
    """The model is exactly as it was: weights, buffers, modes, ratios, grads; no hooks."""
    state = model.state_dict()
    before = snap["state"]
    assert isinstance(before, dict)
    assert state.keys() == before.keys()
    for k, v in before.items():
        assert torch.equal(state[k], v), f"{k} changed"
    assert [m.training for m in model.modules()] == snap["modes"]
    assert [p.requires_grad for p in model.parameters()] == snap["requires_grad"]
    assert [m.ratio for m in model.modules() if isinstance(m, KWTA)] == snap["ratio"]
    grads = snap["grads"]
    assert isinstance(grads, list)
    for p, g in zip(model.parameters(), grads, strict=True):
        assert (p.grad is None and g is None) or (
            p.grad is not None and g is not None and torch.equal(p.grad, g)
        )
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def _json_roundtrip(d: dict) -> None:
    json.dumps(d, allow_nan=True)


@pytest.fixture(scope="module")
def landscapes(
    test_sample: CIFAR10Tensors, relu_model: nn.Module, kwta_model: nn.Module
) -> dict[str, list[Landscape]]:
    x, y = test_sample.tensors(list(LANDSCAPE_IMAGES))
    snaps = {"relu": _snapshot(relu_model), "kwta": _snapshot(kwta_model)}
    out = {
        name: [loss_landscape(m, x[i], y[i], grid=LANDSCAPE_GRID) for i in range(len(y))]
        for name, m in (("relu", relu_model), ("kwta", kwta_model))
    }
    _assert_untouched(relu_model, snaps["relu"])
    _assert_untouched(kwta_model, snaps["kwta"])
    return out


# --------------------------------------------------------------------------- landscape (Fig. 5)


def test_landscape_grid_and_centre(
    landscapes: dict[str, list[Landscape]], relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    c = LANDSCAPE_GRID // 2
    for lands in landscapes.values():
        for land in lands:
            assert land.loss.shape == (LANDSCAPE_GRID, LANDSCAPE_GRID)
            assert land.e1.shape == land.e2.shape == (LANDSCAPE_GRID,)
            assert land.e1[c] == 0.0
            assert land.e1[0] == pytest.approx(-0.04) and land.e1[-1] == pytest.approx(0.04)
            assert bool(torch.isfinite(land.loss).all())
            # The centre is x itself: same loss as the clean forward pass.
            assert float(land.loss[c, c]) == pytest.approx(land.clean_loss, rel=1e-4, abs=1e-5)
            assert set(land.g2.unique().tolist()) == {-1.0, 1.0}
            assert set(land.g1.unique().tolist()) <= {-1.0, 0.0, 1.0}
    # The clean loss is the cross entropy of the model at x; g1 is the sign of its gradient.
    x, y = test_sample.tensors([LANDSCAPE_IMAGES[0]])
    xg = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(relu_model(xg), y)
    (grad,) = torch.autograd.grad(loss, xg)
    land = landscapes["relu"][0]
    assert land.clean_loss == pytest.approx(float(loss.detach()), rel=1e-5)
    assert torch.equal(land.g1, grad.sign()[0])
    _json_roundtrip(land.to_dict())
    assert "g1" not in land.to_dict(directions=False)


def test_landscape_kwta_rougher_than_relu(landscapes: dict[str, list[Landscape]]) -> None:
    # Fig. 5: the k-WTA loss surface is non-smooth, the ReLU one smooth. Measured on the
    # fixtures (grid 21, 20 test images): k-WTA/ReLU roughness ≥ 3.2× along e1, ≥ 30× along e2.
    for relu_land, kwta_land in zip(landscapes["relu"], landscapes["kwta"], strict=True):
        assert kwta_land.roughness(0) > 2 * relu_land.roughness(0)
        assert kwta_land.roughness(1) > 5 * relu_land.roughness(1)


def test_landscape_seeded(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, y = test_sample.tensors([3])
    a = loss_landscape(relu_model, x, y, grid=5, seed=1)
    b = loss_landscape(relu_model, x[0], int(y), grid=5, seed=1)
    c = loss_landscape(relu_model, x, y, grid=5, seed=2)
    assert torch.equal(a.g2, b.g2) and torch.equal(a.loss, b.loss)
    assert not torch.equal(a.g2, c.g2)
    assert torch.equal(a.g1, c.g1)  # the gradient direction does not depend on the seed
    assert not torch.equal(a.loss, c.loss)


def test_landscape_margin_and_callback(kwta_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, y = test_sample.tensors([7])
    calls: list[tuple[int, int]] = []
    snap = _snapshot(kwta_model)
    land = loss_landscape(
        kwta_model,
        x,
        y,
        grid=3,
        loss="margin",
        batch_size=4,
        callback=lambda d, t: calls.append((d, t)),
    )
    _assert_untouched(kwta_model, snap)
    with torch.no_grad():
        z = kwta_model(x)[0]
    others = torch.cat([z[: int(y)], z[int(y) + 1 :]])
    assert land.clean_loss == pytest.approx(float(others.max() - z[int(y)]), rel=1e-5, abs=1e-6)
    assert float(land.loss[1, 1]) == pytest.approx(land.clean_loss, rel=1e-4, abs=1e-5)
    assert calls == [(4, 9), (8, 9), (9, 9)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"grid": 1},
        {"grid": MAX_GRID + 1},
        {"grid": 2.5},
        {"span": 0.0},
        {"span": -0.1},
        {"span": math.nan},
        {"loss": "mse"},
        {"batch_size": 0},
    ],
)
def test_landscape_rejects_bad_arguments(
    kwargs: dict[str, Any], relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, y = test_sample.tensors([0])
    with pytest.raises(ValueError):
        loss_landscape(relu_model, x, y, **kwargs)


def test_landscape_rejects_batches(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, y = test_sample.tensors([0, 1])
    with pytest.raises(ValueError, match="one image"):
        loss_landscape(relu_model, x, y[:1], grid=3)


# --------------------------------------------------------------------------- toy fit (Fig. 1)


@pytest.fixture(scope="module")
def toy() -> ToyFit:
    return toy_fit(seed=0)


def test_toy_fit_kwta_jumps_relu_continuous(toy: ToyFit) -> None:
    assert toy.x_train.shape == toy.y_train.shape == (8,)
    assert toy.x_dense.shape == toy.kwta_dense.shape == toy.relu_dense.shape == (2000,)
    # Both fit the 8 points (targets in [-1, 1]).
    assert toy.kwta_loss < 1e-2
    assert toy.relu_loss < 1e-2
    # The k-WTA fit is discontinuous (Fig. 1), the ReLU fit is continuous.
    assert len(toy.kwta_jumps) >= 1
    assert len(toy.relu_jumps) == 0
    spread = float(toy.kwta_dense.max() - toy.kwta_dense.min())
    assert bool((toy.kwta_jumps.sizes.abs() > 1e-3 * spread).all())
    assert bool(((toy.kwta_jumps.locations > -1) & (toy.kwta_jumps.locations < 1)).all())
    d = toy.to_dict()
    _json_roundtrip(d)
    assert set(d["kwta_jumps"]) == {"locations", "sizes"}


def test_toy_fit_seeded_and_leaves_global_rng() -> None:
    state = torch.random.get_rng_state()
    a = toy_fit(seed=3, steps=200, n_dense=200)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = toy_fit(seed=3, steps=200, n_dense=200)
    c = toy_fit(seed=4, steps=200, n_dense=200)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.kwta_dense, b.kwta_dense)
    assert torch.equal(a.kwta_jumps.locations, b.kwta_jumps.locations)
    assert not torch.equal(a.x_train, c.x_train)


def test_toy_fit_reports_progress_and_stops_when_the_callback_raises() -> None:
    seen: list[tuple[int, int]] = []
    quiet = toy_fit(seed=3, steps=120, n_dense=100)
    fit = toy_fit(seed=3, steps=120, n_dense=100, callback=lambda d, t: seen.append((d, t)))
    assert seen == [(50, 240), (100, 240), (120, 240), (170, 240), (220, 240), (240, 240)]
    assert torch.equal(fit.kwta_dense, quiet.kwta_dense)  # reporting changes nothing

    class Stop(Exception):
        pass

    calls: list[int] = []

    def cancel(done: int, total: int) -> None:
        calls.append(done)
        raise Stop

    with pytest.raises(Stop):
        toy_fit(seed=3, steps=2000, n_dense=100, callback=cancel)
    assert calls == [50]  # stopped at the first report, not after 4 000 steps


def test_toy_fit_custom_target_and_validation() -> None:
    fit = toy_fit(seed=0, steps=50, n_dense=50, n_points=4, target=lambda x: x**2)
    assert torch.allclose(fit.y_train, fit.x_train**2)
    assert torch.allclose(fit.target_dense, fit.x_dense**2)
    bad: list[dict[str, Any]] = [
        {"ratio": 0.0},
        {"x_range": (1.0, -1.0)},
        {"n_dense": 1},
        {"n_points": 0},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            toy_fit(steps=1, **kwargs)


def test_find_jumps_separates_jumps_from_kinks() -> None:
    # A kink at -0.2 (continuous) and a jump of -0.5 at 0.3: only the jump is reported.
    def f(x: Tensor) -> Tensor:
        return 3 * (x + 0.2).abs() - 0.5 * (x > 0.3).double()

    xs = torch.linspace(-1, 1, 101, dtype=torch.float64)
    jumps = _find_jumps(f, xs, f(xs), atol=1e-6, halvings=40)
    assert len(jumps) == 1
    assert float(jumps.locations[0]) == pytest.approx(0.3, abs=1e-10)
    assert float(jumps.sizes[0]) == pytest.approx(-0.5, abs=1e-9)


# --------------------------------------------------------------------------- patterns (Sec. 3)


def test_activation_patterns_kwta_has_k_winners(
    kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, _ = test_sample.tensors(range(4))
    snap = _snapshot(kwta_model)
    pats = activation_patterns(kwta_model, x)
    _assert_untouched(kwta_model, snap)
    assert len(pats) == 17  # stem + 2 per BasicBlock × 8
    assert next(iter(pats)) == "act1"
    for mask in pats.values():
        assert mask.dtype == torch.bool and mask.shape[0] == 4
        k = k_from_ratio(0.2, mask[0].numel())
        assert mask.reshape(4, -1).sum(dim=1).tolist() == [k] * 4


def test_activation_patterns_relu_and_train_mode(
    relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, _ = test_sample.tensors([5])
    pats = activation_patterns(relu_model, x[0])
    assert len(pats) == 17
    assert all(m.shape[0] == 1 for m in pats.values())
    # A model in training mode is analysed in eval mode without being switched.
    train_copy = copy.deepcopy(relu_model).train()
    snap = _snapshot(train_copy)
    pats_train = activation_patterns(train_copy, x)
    _assert_untouched(train_copy, snap)
    assert all(torch.equal(pats[k], pats_train[k]) for k in pats)


def test_pattern_change_kwta_vs_relu(
    relu_model: nn.Module, kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    # Theorem 1 / Sec. 3: a perturbation of 1/255 replaces a large share of the k-WTA
    # winners (measured: 14 % of them, averaged over layers) but flips few ReLU units (< 1 %).
    x, _ = test_sample.tensors(range(0, 1000, 125))
    eps = [0.0, 1 / 255, 8 / 255]
    calls: list[tuple[int, int]] = []
    res = {}
    for name, m in (("relu", relu_model), ("kwta", kwta_model)):
        snap = _snapshot(m)
        res[name] = pattern_change(m, x, eps, n_dirs=2, callback=lambda d, t: calls.append((d, t)))
        _assert_untouched(m, snap)
        r = res[name]
        assert r.changed_fraction.shape == r.changed_any.shape == (3, 17)
        assert len(r.layers) == 17 and r.n_samples == 8 and r.n_dirs == 2
        assert bool((r.changed_fraction[0] == 0).all()) and bool((r.changed_any[0] == 0).all())
        mean = r.mean_changed_fraction
        assert 0 < mean[1] < mean[2] <= 1
        _json_roundtrip(r.to_dict())
    assert calls[-1] == (6, 6) and len(calls) == 12
    assert res["kwta"].mean_changed_fraction[1] > 3 * res["relu"].mean_changed_fraction[1]
    assert float(res["kwta"].changed_any[1].mean()) > 0.9


def test_pattern_change_validation(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, _ = test_sample.tensors([0])
    with pytest.raises(ValueError):
        pattern_change(relu_model, x, [-0.1])
    with pytest.raises(ValueError):
        pattern_change(relu_model, x, [])
    with pytest.raises(ValueError):
        pattern_change(relu_model, x, [0.1], n_dirs=0)
    with pytest.raises(ValueError, match="no activation layers"):
        pattern_change(nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)), x, [0.1])


def test_pattern_overlap(
    relu_model: nn.Module, kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    # Theorem 2: k-WTA patterns of different inputs overlap little (measured ≈ γ = 0.2-0.3,
    # the overlap of random k-subsets), ReLU patterns by about half or more.
    x, _ = test_sample.tensors(range(0, 1000, 100))
    summaries = {}
    for name, m in (("relu", relu_model), ("kwta", kwta_model)):
        snap = _snapshot(m)
        ov = pattern_overlap(m, x)
        _assert_untouched(m, snap)
        assert len(ov) == 17
        for mat in ov.values():
            assert mat.shape == (10, 10)
            assert torch.allclose(mat.diagonal(), torch.ones(10, dtype=mat.dtype))
            assert torch.allclose(mat, mat.T)
            assert bool(((mat >= 0) & (mat <= 1 + 1e-12)).all())
        summaries[name] = overlap_summary(ov)
    for layer, kwta_overlap in summaries["kwta"].items():
        assert 0 < kwta_overlap < summaries["relu"][layer]
    assert math.isnan(overlap_summary({"a": torch.ones(1, 1)})["a"])


def test_theorem1_width_sweep() -> None:
    calls: list[tuple[int, int]] = []
    kwargs: dict[str, Any] = {"betas": (1e-4,), "n_trials": 100, "seed": 0}
    s = theorem1_width_sweep((16, 256, 4096), callback=lambda d, t: calls.append((d, t)), **kwargs)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert s.change_prob.shape == s.changed_fraction.shape == (3, 1)
    p = s.change_prob[:, 0]
    # Wider layers change pattern under the same relative perturbation (measured 0.02, 0.27, 1.0).
    assert p[0] < p[1] < p[2]
    assert p[2] - p[0] > 0.5
    again = theorem1_width_sweep((16, 256, 4096), **kwargs)
    assert torch.equal(s.change_prob, again.change_prob)
    _json_roundtrip(s.to_dict())
    with pytest.raises(ValueError):
        theorem1_width_sweep((0,))
    with pytest.raises(ValueError):
        theorem1_width_sweep((16,), betas=(0.0,))
    with pytest.raises(ValueError):
        theorem1_width_sweep((16,), ratio=1.5)


# --------------------------------------------------------------------------- weight line (Fig. 3c)


def test_weight_line(
    relu_model: nn.Module, kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, y = test_sample.tensors(range(0, 1000, 32))
    alphas = [-1e-3, 0.0, 1e-4, 1e-3]
    for m in (relu_model, kwta_model):
        snap = _snapshot(m)
        line = weight_line(m, x, y, alphas=alphas, batch_size=20)
        rand = weight_line(m, x, y, alphas=alphas, direction="random", normalization="global")
        _assert_untouched(m, snap)
        with torch.no_grad():
            logits = m(x)
        plain = float(nn.functional.cross_entropy(logits, y))
        plain_acc = float((logits.argmax(dim=1) == y).double().mean())
        for ln in (line, rand):
            assert ln.loss.shape == ln.accuracy.shape == (4,)
            assert float(ln.loss[1]) == pytest.approx(plain, rel=1e-5)
            assert float(ln.accuracy[1]) == pytest.approx(plain_acc)
        _json_roundtrip(line.to_dict())
    # ReLU: the loss is smooth in the weights, so a small step along −∇ lowers it.
    relu_line = weight_line(relu_model, x, y, alphas=[0.0, 1e-4])
    assert relu_line.loss[1] < relu_line.loss[0]


def test_weight_line_random_seeded(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, y = test_sample.tensors(range(8))
    a = weight_line(relu_model, x, y, alphas=[0.05], direction="random", seed=1)
    b = weight_line(relu_model, x, y, alphas=[0.05], direction="random", seed=1)
    c = weight_line(relu_model, x, y, alphas=[0.05], direction="random", seed=2)
    assert torch.equal(a.loss, b.loss)
    assert not torch.equal(a.loss, c.loss)
    bad: list[dict[str, Any]] = [{"direction": "up"}, {"normalization": "layer"}, {"loss": "mse"}]
    for kwargs in bad:
        with pytest.raises(ValueError):
            weight_line(relu_model, x, y, alphas=[0.0], **kwargs)
    with pytest.raises(ValueError):
        weight_line(relu_model, x, y, alphas=[])


# --------------------------------------------------------------------------- γ sweep (Fig. 4)


def test_gamma_sweep(kwta_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, y = test_sample.tensors(range(0, 1000, 20))
    ratios = [0.1, 0.2, 0.5]
    seen: list[tuple[float | None, bool]] = []

    def attack(model: nn.Module, xa: Tensor, ya: Tensor) -> Tensor:
        seen.append((get_ratio(model), model is kwta_model))
        return xa.flip(3)  # a fixed transformation stands in for an attack

    calls: list[tuple[int, int]] = []
    snap = _snapshot(kwta_model)
    sweep = gamma_sweep(
        kwta_model, x, y, ratios, attack=attack, callback=lambda d, t: calls.append((d, t))
    )
    _assert_untouched(kwta_model, snap)
    assert get_ratio(kwta_model) == 0.2
    assert seen == [(0.1, False), (0.2, False), (0.5, False)]
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert sweep.ratios.tolist() == ratios and sweep.original_ratio == 0.2
    assert sweep.clean_accuracy.shape == (3,)
    assert sweep.robust_accuracy is not None and sweep.robust_accuracy.shape == (3,)
    with torch.no_grad():
        ok = kwta_model(x).argmax(dim=1) == y
        own = float(ok.double().mean())
        # robust: right on the clean image and on its transformed version
        flipped = float((ok & (kwta_model(x.flip(3)).argmax(dim=1) == y)).double().mean())
    assert float(sweep.clean_accuracy[1]) == pytest.approx(own)
    assert float(sweep.robust_accuracy[1]) == pytest.approx(flipped)
    _json_roundtrip(sweep.to_dict())
    clean_only = gamma_sweep(kwta_model, x[:20], y[:20], [0.3])
    assert clean_only.robust_accuracy is None and clean_only.to_dict()["robust_accuracy"] is None


@pytest.mark.parametrize("bad", [[0.0], [1.5], [0.2, -0.1], []])
def test_gamma_sweep_rejects_bad_ratios(
    bad: list[float], kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, y = test_sample.tensors(range(4))
    with pytest.raises(ValueError):
        gamma_sweep(kwta_model, x, y, bad)
    assert get_ratio(kwta_model) == 0.2


def test_gamma_sweep_needs_kwta(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, y = test_sample.tensors(range(4))
    with pytest.raises(ValueError, match="no k-WTA"):
        gamma_sweep(relu_model, x, y, [0.1])
