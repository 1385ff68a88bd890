"""APGD-CE/-DLR and the Square attack (kwta.attacks.apgd, kwta.attacks.square) on real
CIFAR-10 images and real networks.

Where ``pyautoattack`` (Croce & Hein's packaging of the official fra31/auto-attack
code) is installed, it serves as the reference: same model, same images, same
budgets, robust accuracies within a few images of ours.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from kwta.attacks._core import attack_loss, is_correct, robust_accuracy, traced
from kwta.attacks.apgd import apgd_checkpoints, apgd_linf, dlr_loss
from kwta.attacks.sign_gradient import pgd_linf
from kwta.attacks.square import square_linf, square_p_schedule
from kwta.data import CIFAR10Tensors

EPS = 8 / 255
SMALL_EPS = 2 / 255  # where neither the ReLU nor the k-WTA fixture model is broken completely


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _broken(model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor) -> int:
    """Images of ``x`` (all classified correctly) that ``x_adv`` misclassifies."""
    return round((1.0 - robust_accuracy(model, x, y, x_adv)) * len(x))


def _correct(model: nn.Module, sample: CIFAR10Tensors, n: int = 32) -> tuple[Tensor, Tensor]:
    x, y = sample.tensors(range(400))
    ok = is_correct(model, x, y)
    assert int(ok.sum()) >= n, "the fixture models get ~25-35% of the test images right"
    idx = ok.nonzero().squeeze(1)[:n]
    return x[idx], y[idx]


@pytest.fixture(scope="module")
def mixed(test_sample: CIFAR10Tensors) -> tuple[Tensor, Tensor]:
    """16 real test images, one or two per class (some classified right, some wrong)."""
    return test_sample.tensors(test_sample.balanced_indices(16, seed=0))


@pytest.fixture(scope="module")
def relu_correct(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> tuple[Tensor, Tensor]:
    """32 real test images the ReLU model classifies correctly."""
    return _correct(relu_model, test_sample)


@pytest.fixture(scope="module")
def kwta_correct(kwta_model: nn.Module, test_sample: CIFAR10Tensors) -> tuple[Tensor, Tensor]:
    """32 real test images the k-WTA model classifies correctly."""
    return _correct(kwta_model, test_sample)


@pytest.fixture(params=["relu", "kwta"])
def any_model(request: pytest.FixtureRequest) -> nn.Module:
    model: nn.Module = request.getfixturevalue(f"{request.param}_model")
    return model


#: Cheap runs of each attack, for the property tests.
FAST: dict[str, Callable[..., Any]] = {
    "apgd-ce": lambda m, x, y, **kw: apgd_linf(m, x, y, steps=5, loss="ce", **kw),
    "apgd-dlr": lambda m, x, y, **kw: apgd_linf(m, x, y, steps=5, loss="dlr", **kw),
    "square": lambda m, x, y, **kw: square_linf(m, x, y, queries=20, **kw),
}


# --------------------------------------------------------------------------- pieces


def test_dlr_loss(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, y = test_sample.tensors(range(100))
    with torch.no_grad():
        z = relu_model(x)
    dlr = dlr_loss(z, y)
    assert dlr.shape == (100,)
    # by hand for one row
    z0, c = z[0], int(y[0])
    top = z0.sort(descending=True).values
    other = torch.cat([z0[:c], z0[c + 1 :]]).max()
    assert dlr[0].item() == pytest.approx((-(z0[c] - other) / (top[0] - top[2])).item(), rel=1e-5)
    # positive exactly when misclassified; invariant to shifting and scaling the logits
    wrong = z.argmax(1) != y
    assert wrong.any() and (~wrong).any()
    assert torch.equal(dlr > 0, wrong)
    assert torch.allclose(dlr_loss(3.0 * z - 7.0, y), dlr, atol=1e-5)
    with pytest.raises(ValueError, match="3"):
        dlr_loss(z[:, :2], y.clamp(max=1))


def test_apgd_checkpoints_and_square_schedule() -> None:
    # Croce & Hein (2020), Sec. 3.2: p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert apgd_checkpoints(0) == []
    for n in (1, 5, 10, 40, 250, 1000):
        w = apgd_checkpoints(n)
        assert w[0] == max(int(0.22 * n), 1) and w[-1] <= n
        gaps = [b - a for a, b in zip([0, *w], w, strict=False)]
        assert gaps == sorted(gaps, reverse=True) and min(gaps) >= max(int(0.06 * n), 1)
    # Andriushchenko et al. (2020): p halves after 10, 50, 200, ... of 10 000 queries
    p = [square_p_schedule(i, 10_000) for i in (0, 10, 11, 50, 51, 500, 501, 8000, 8001)]
    assert p == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2, 0.1, 0.05, 0.8 / 256, 0.8 / 512])
    # rescaled to the budget, as the reference code: with 1 000 queries, 10× sooner
    assert square_p_schedule(2, 1000) == 0.4 and square_p_schedule(1, 1000) == 0.8


# --------------------------------------------------------------------------- threat model


@pytest.mark.parametrize("name", sorted(FAST))
def test_output_in_eps_ball_and_box(
    name: str, any_model: nn.Module, mixed: tuple[Tensor, Tensor]
) -> None:
    x, y = mixed
    x_in = x.clone()
    x_adv = FAST[name](any_model, x, y, eps=EPS, generator=_gen())
    assert isinstance(x_adv, Tensor)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert not x_adv.requires_grad
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert torch.equal(x, x_in)
    # images misclassified to begin with come back unchanged (hence still misclassified)
    wrong = ~is_correct(any_model, x, y)
    assert wrong.any() and (~wrong).any()
    assert torch.equal(x_adv[wrong], x[wrong])
    assert not torch.equal(x_adv[~wrong], x[~wrong]), "the correct images should be attacked"


@pytest.mark.parametrize("name", sorted(FAST))
def test_eps_zero_returns_x(name: str, relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed
    assert torch.equal(FAST[name](relu_model, x, y, eps=0.0), x)
    assert torch.equal(apgd_linf(relu_model, x, y, eps=EPS, steps=0), x)
    assert torch.equal(square_linf(relu_model, x, y, eps=EPS, queries=0), x)


# --------------------------------------------------------------------------- strength


def test_apgd_at_least_as_strong_as_pgd(
    relu_model: nn.Module, relu_correct: tuple[Tensor, Tensor]
) -> None:
    x, y = relu_correct
    # the paper's PGD (App. D.1) and APGD-CE with 40 gradient steps as well
    x_pgd = pgd_linf(relu_model, x, y, eps=0.031, alpha=0.003, steps=40, generator=_gen())
    x_apgd = apgd_linf(relu_model, x, y, eps=0.031, steps=40, generator=_gen())
    assert _broken(relu_model, x, y, x_apgd) >= _broken(relu_model, x, y, x_pgd)
    # a smaller eps, where PGD does not break everything (measured 8/32 left by both)
    x_pgd = pgd_linf(relu_model, x, y, eps=SMALL_EPS, alpha=SMALL_EPS / 10, steps=40)
    x_apgd = apgd_linf(relu_model, x, y, eps=SMALL_EPS, steps=40, generator=_gen())
    assert _broken(relu_model, x, y, x_pgd) < len(x)
    assert _broken(relu_model, x, y, x_apgd) >= _broken(relu_model, x, y, x_pgd) - 1
    # DLR works too (measured: every image broken at eps 8/255)
    x_dlr = apgd_linf(relu_model, x, y, eps=EPS, steps=40, loss="dlr", generator=_gen())
    assert robust_accuracy(relu_model, x, y, x_dlr) <= 0.25


def test_apgd_beats_pgd_on_kwta(kwta_model: nn.Module, kwta_correct: tuple[Tensor, Tensor]) -> None:
    """k-WTA's discontinuities stall fixed-step PGD; APGD's adaptive step does much better."""
    x, y = kwta_correct
    x_pgd = pgd_linf(
        kwta_model, x, y, eps=SMALL_EPS, alpha=SMALL_EPS / 10, steps=40, generator=_gen()
    )
    pgd = _broken(kwta_model, x, y, x_pgd)
    # measured: PGD breaks 17/32, APGD-CE 25/32 and APGD-DLR 26/32
    for loss in ("ce", "dlr"):
        x_apgd = apgd_linf(kwta_model, x, y, eps=SMALL_EPS, steps=40, loss=loss, generator=_gen())
        assert _broken(kwta_model, x, y, x_apgd) >= pgd + 3, loss


def test_square_breaks_relu_model(
    relu_model: nn.Module, relu_correct: tuple[Tensor, Tensor]
) -> None:
    x, y = relu_correct
    x_sq, trace = traced(square_linf)(relu_model, x, y, eps=0.031, queries=300, generator=_gen())
    # measured: 23 of the 32 images broken (robust accuracy 0.28)
    assert robust_accuracy(relu_model, x, y, x_sq) <= 0.5
    # median queries to break an image are far below the budget
    assert trace.queries is not None
    done = trace.queries[-1]
    hit = trace.pred[-1] != y
    assert int(hit.sum()) >= 16
    assert done[hit].float().median().item() < 150
    assert torch.all(done[~hit] == 300)


# --------------------------------------------------------------------------- reference oracle


@pytest.mark.filterwarnings("ignore:there are .* zero gradient")  # the reference's own check
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_matches_reference(
    loss: str, kwta_model: nn.Module, kwta_correct: tuple[Tensor, Tensor]
) -> None:
    ref = pytest.importorskip("pyautoattack.autopgd_base")
    x, y = kwta_correct
    ours = apgd_linf(kwta_model, x, y, eps=SMALL_EPS, steps=40, loss=loss, generator=_gen())  # type: ignore[call-overload]
    with torch.random.fork_rng():  # the reference reseeds the global RNG
        attack = ref.APGDAttack(kwta_model, n_iter=40, eps=SMALL_EPS, loss=loss, seed=0)
        theirs = attack.perturb(x, y)
    # measured (3 seeds): ours 25-26/32 broken, the reference's 24-26/32, never more than 1 apart
    assert abs(_broken(kwta_model, x, y, ours) - _broken(kwta_model, x, y, theirs)) <= 3


def test_square_matches_reference(
    kwta_model: nn.Module, kwta_correct: tuple[Tensor, Tensor]
) -> None:
    ref = pytest.importorskip("pyautoattack.square")
    x, y = kwta_correct
    ours = square_linf(kwta_model, x, y, eps=SMALL_EPS, queries=200, generator=_gen())
    with torch.random.fork_rng():
        theirs = ref.SquareAttack(kwta_model, n_queries=200, eps=SMALL_EPS, seed=0).perturb(x, y)
    # measured (2 seeds): ours 23/32 broken, the reference's 21-22/32
    assert abs(_broken(kwta_model, x, y, ours) - _broken(kwta_model, x, y, theirs)) <= 4


# --------------------------------------------------------------------------- traces and budgets


def test_apgd_trace_and_restarts(relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed
    eps = 1 / 255
    wrong = ~is_correct(relu_model, x, y)
    one = apgd_linf(relu_model, x, y, eps=eps, steps=6, generator=_gen(), restarts=1)
    x_adv, trace = traced(apgd_linf)(
        relu_model, x, y, eps=eps, steps=6, generator=_gen(), restarts=3
    )
    assert trace.num_samples == 16 and 1 <= trace.steps <= 18
    with torch.no_grad():
        assert torch.allclose(trace.logits[0], relu_model(x), atol=1e-5)
    assert torch.allclose(
        trace.loss,
        attack_loss(trace.logits.flatten(0, 1), y.repeat(trace.steps + 1)).view_as(trace.loss),
    )
    assert torch.all(trace.linf[0] == 0) and trace.linf.max() <= eps + 1e-6
    q = trace.queries
    assert q is not None and torch.all(q[0] == 0) and torch.all(q[1:] >= q[:-1])
    assert torch.all(q[:, wrong] == 0)  # never attacked
    # the first restart is the same run as with restarts=1; later ones only add broken images
    broken_one = ~is_correct(relu_model, one, y) & ~wrong
    broken = ~is_correct(relu_model, x_adv, y) & ~wrong
    assert torch.all(broken[broken_one])
    # an image stops being attacked (and counted) once broken: its row repeats
    hit = trace.correct()[:-1] & ~trace.correct()[1:]  # broken at this step
    for t, b in hit.nonzero().tolist():
        assert torch.all(q[t + 1 :, b] == q[t + 1, b])
        assert torch.equal(trace.logits[-1, b], trace.logits[t + 1, b])
    # images never broken were run 3 times: 2 · (1 + 6) gradient queries per run
    survivors = ~wrong & trace.correct()[-1]
    assert survivors.any() and trace.steps == 18
    assert torch.all(q[-1, survivors] == 3 * 14)
    # survivors come back at their highest-loss iterate, broken images at their first adversarial
    with torch.no_grad():
        z_adv = relu_model(x_adv)
    final = attack_loss(z_adv, y)
    for b in survivors.nonzero().squeeze(1).tolist():
        assert final[b].item() >= trace.loss[1:, b].max().item() - 1e-4, b
    assert torch.allclose(z_adv[broken], trace.logits[-1, broken], atol=1e-4)
    # the DLR trace records the DLR loss
    _, t_dlr = traced(apgd_linf)(relu_model, x, y, eps=eps, steps=2, loss="dlr")
    assert torch.allclose(t_dlr.loss[0], dlr_loss(t_dlr.logits[0], y))


def test_square_stops_querying_broken_images(
    relu_model: nn.Module, mixed: tuple[Tensor, Tensor]
) -> None:
    x, y = mixed
    wrong = ~is_correct(relu_model, x, y)
    x_adv, trace = traced(square_linf)(relu_model, x, y, eps=EPS, queries=60, generator=_gen())
    q = trace.queries
    assert q is not None and trace.labels is not None
    assert torch.all(q[:, wrong] == 0) and torch.equal(x_adv[wrong], x[wrong])
    assert torch.all(q[0] == 0) and q.max() <= 60 and torch.all(q[1:] >= q[:-1])
    # row t is the best point after t queries: query counts follow the row index until broken
    hit = ~trace.correct() & ~wrong
    for b in (~wrong).nonzero().squeeze(1).tolist():
        rows = hit[:, b].nonzero()
        if len(rows):  # broken after t queries, then no more
            t = int(rows[0])
            assert torch.all(q[t:, b] == t), b
        else:
            assert torch.all(q[:, b] == torch.arange(trace.steps + 1)), b
    assert (hit[-1]).any() and (~hit[-1] & ~wrong).any()
    # the trace's last row is the returned point
    with torch.no_grad():
        assert torch.equal(relu_model(x_adv).argmax(1), trace.pred[-1])
    assert torch.allclose(trace.linf[-1], (x_adv - x).flatten(1).abs().amax(1), atol=1e-6)


# --------------------------------------------------------------------------- hygiene


def test_seeded_reproducibility(relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed
    state = torch.get_rng_state()
    for name, attack in FAST.items():
        a = attack(relu_model, x, y, eps=EPS, generator=_gen(7))
        b = attack(relu_model, x, y, eps=EPS, generator=_gen(7))
        assert torch.equal(a, b), name
        c = attack(relu_model, x, y, eps=EPS, generator=_gen(8))
        assert not torch.equal(a, c), name
    assert torch.equal(torch.get_rng_state(), state), "a given generator must not use global RNG"


def test_model_is_untouched(kwta_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    model = copy.deepcopy(kwta_model)
    for p in model.parameters():
        p.grad = None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    x, y = mixed[0][:6], mixed[1][:6]
    x_in = x.clone()
    for attack in FAST.values():
        attack(model, x, y, eps=EPS)
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k  # weights and BN running statistics
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert not any(m.training for m in model.modules())
    assert torch.equal(x, x_in) and not x.requires_grad


def test_works_under_no_grad(relu_model: nn.Module, relu_correct: tuple[Tensor, Tensor]) -> None:
    x, y = relu_correct[0][:12], relu_correct[1][:12]
    with torch.no_grad():
        x_adv = apgd_linf(relu_model, x, y, eps=EPS, steps=10, generator=_gen())
        assert not torch.is_grad_enabled()
    assert robust_accuracy(relu_model, x, y, x_adv) < 0.5


def test_callbacks(relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed
    calls: list[tuple[int, int]] = []

    def cb(step: int, steps: int) -> None:
        calls.append((step, steps))

    # eps too small to break anything in 3 steps: every step of both restarts is reported
    apgd_linf(relu_model, x, y, eps=1e-4, steps=3, restarts=2, callback=cb, generator=_gen())
    assert calls == [(i, 6) for i in range(1, 7)]
    calls.clear()
    square_linf(relu_model, x, y, eps=1e-4, queries=4, callback=cb, generator=_gen())
    assert calls == [(i, 4) for i in range(1, 5)]
    calls.clear()
    # once everything is broken the attack stops and jumps to the end
    apgd_linf(relu_model, x, y, eps=0.2, steps=50, callback=cb, generator=_gen())
    assert calls[-1] == (50, 50) and len(calls) < 50
    assert [s for s, _ in calls] == sorted({s for s, _ in calls})
    calls.clear()
    square_linf(relu_model, x, y, eps=0.3, queries=500, callback=cb, generator=_gen())
    assert calls[-1] == (500, 500) and len(calls) < 500


def test_bad_arguments(relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed[0][:2], mixed[1][:2]
    m = relu_model
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: apgd_linf(m, x, y, eps=-0.1), "eps"),
        (lambda: apgd_linf(m, x * 255, y, eps=0.1), r"\[0, 1\]"),
        (lambda: apgd_linf(m, x, y[:1], eps=0.1), "shape"),
        (lambda: apgd_linf(m, x, y, eps=0.1, steps=-1), "steps"),
        (lambda: apgd_linf(m, x, y, eps=0.1, steps=2.5), "steps"),  # type: ignore[call-overload]
        (lambda: apgd_linf(m, x, y, eps=0.1, restarts=0), "restarts"),
        (lambda: apgd_linf(m, x, y, eps=0.1, loss="margin"), "APGD loss"),  # type: ignore[call-overload]
        (lambda: apgd_linf(m, x, y, eps=0.1, rho=1.5), "rho"),
        (lambda: square_linf(m, x, y, eps=-1.0), "eps"),
        (lambda: square_linf(m, x, y, eps=0.1, queries=-5), "queries"),
        (lambda: square_linf(m, x, y, eps=0.1, p_init=0.0), "p_init"),
        (lambda: square_linf(m, x, y, eps=0.1, p_init=1.5), "p_init"),
        (lambda: square_linf(m, x, y, eps=0.1, loss="dlr"), "Square loss"),  # type: ignore[call-overload]
        (lambda: square_linf(m, x.flatten(1), y, eps=0.1), "B, C, H, W"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
