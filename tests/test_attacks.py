"""Attacks of Sec. 4 / App. D.1 on real CIFAR-10 images and real (briefly trained) networks."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from kwta.attacks._core import Trace, attack_loss, is_correct, robust_accuracy, traced
from kwta.attacks.min_norm import cw_l2, deepfool_linf
from kwta.attacks.registry import attack_names, get_attack, max_queries, run_attack
from kwta.attacks.sign_gradient import fgsm_linf, mim_linf, pgd_linf
from kwta.attacks.transfer import transfer_attack, transfer_matrix
from kwta.data import CIFAR10Tensors

EPS = 8 / 255

#: Cheap versions of every attack, for the property tests.
FAST: dict[str, dict[str, Any]] = {
    "fgsm": {"eps": EPS},
    "pgd": {"eps": EPS, "alpha": 2 / 255, "steps": 5},
    "mim": {"eps": EPS, "alpha": 2 / 255, "steps": 5},
    "cw": {"eps": EPS, "steps": 5, "binary_search_steps": 2, "lr": 0.05},
    "deepfool": {"eps": EPS, "steps": 5, "candidates": 4},
}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def mixed(test_sample: CIFAR10Tensors) -> tuple[Tensor, Tensor]:
    """16 real test images, one or two per class (some classified right, some wrong)."""
    return test_sample.tensors(test_sample.balanced_indices(16, seed=0))


@pytest.fixture(scope="module")
def relu_correct(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> tuple[Tensor, Tensor]:
    """32 real test images the ReLU model classifies correctly."""
    x, y = test_sample.tensors(range(400))
    ok = is_correct(relu_model, x, y)
    assert int(ok.sum()) >= 32, "the fixture model should get ~30% of the test images right"
    idx = ok.nonzero().squeeze(1)[:32]
    return x[idx], y[idx]


@pytest.fixture(params=["relu", "kwta"])
def any_model(request: pytest.FixtureRequest) -> nn.Module:
    """The ReLU and the k-WTA network in turn."""
    model: nn.Module = request.getfixturevalue(f"{request.param}_model")
    return model


# --------------------------------------------------------------------------- losses


def test_attack_loss_ce_and_margin(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, y = test_sample.tensors(range(200))
    with torch.no_grad():
        logits = relu_model(x)
    ce = attack_loss(logits, y, "ce")
    assert ce.shape == (200,)
    assert torch.allclose(ce, nn.functional.cross_entropy(logits, y, reduction="none"))
    margin = attack_loss(logits, y, "margin")
    wrong = logits.argmax(1) != y
    assert wrong.any() and (~wrong).any()
    # positive exactly when misclassified
    assert torch.equal(margin > 0, wrong)
    # by hand for one row
    z, c = logits[0], int(y[0])
    others = torch.cat([z[:c], z[c + 1 :]])
    assert margin[0].item() == pytest.approx((others.max() - z[c]).item(), abs=1e-6)
    with pytest.raises(ValueError, match="unknown attack loss"):
        attack_loss(logits, y, "hinge")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- threat model


@pytest.mark.parametrize("name", attack_names("standard"))
def test_output_in_eps_ball_and_box(
    name: str, any_model: nn.Module, mixed: tuple[Tensor, Tensor]
) -> None:
    model = any_model
    x, y = mixed
    kwargs = dict(FAST[name])
    if "generator" in inspect.signature(get_attack(name).fn).parameters:
        kwargs["generator"] = _gen()
    x_adv = get_attack(name).fn(model, x, y, **kwargs)
    assert isinstance(x_adv, Tensor)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert not x_adv.requires_grad
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert not torch.equal(x_adv, x), "the attack should move at least some pixels"


@pytest.mark.parametrize("name", attack_names("standard"))
def test_eps_zero_returns_x(name: str, relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed
    x_adv = run_attack(name, relu_model, x[:4], y[:4], **{**FAST[name], "eps": 0.0})
    assert torch.equal(x_adv, x[:4])


# --------------------------------------------------------------------------- effectiveness


def test_pgd_and_mim_break_relu_model(
    relu_model: nn.Module, relu_correct: tuple[Tensor, Tensor]
) -> None:
    x, y = relu_correct
    assert robust_accuracy(relu_model, x, y, x) == 1.0
    x_pgd = pgd_linf(relu_model, x, y, eps=EPS, alpha=2 / 255, steps=10, generator=_gen())
    acc_pgd = robust_accuracy(relu_model, x, y, x_pgd)
    assert acc_pgd < 0.5, acc_pgd
    x_mim = mim_linf(relu_model, x, y, eps=EPS, alpha=2 / 255, steps=10)
    assert robust_accuracy(relu_model, x, y, x_mim) < 0.5
    # the margin loss works as well
    x_m = pgd_linf(relu_model, x, y, eps=EPS, alpha=2 / 255, steps=10, loss="margin")
    assert robust_accuracy(relu_model, x, y, x_m) < 0.5
    # a single FGSM step hurts too
    x_f = fgsm_linf(relu_model, x, y, eps=EPS)
    assert robust_accuracy(relu_model, x, y, x_f) < 1.0


def test_cw_and_deepfool_break_relu_model(
    relu_model: nn.Module, relu_correct: tuple[Tensor, Tensor]
) -> None:
    x, y = relu_correct[0][:16], relu_correct[1][:16]
    x_cw = cw_l2(relu_model, x, y, eps=EPS, steps=10, binary_search_steps=3)
    acc_cw = robust_accuracy(relu_model, x, y, x_cw)
    assert acc_cw < 0.5, acc_cw
    # same iterates, kept by L2 norm instead: never stronger under the L∞ budget here
    x_l2 = cw_l2(relu_model, x, y, eps=EPS, steps=10, binary_search_steps=3, select="l2")
    assert robust_accuracy(relu_model, x, y, x_l2) >= acc_cw
    x_df = deepfool_linf(relu_model, x, y, **get_attack("deepfool").defaults)
    acc_df = robust_accuracy(relu_model, x, y, x_df)
    assert acc_df < 0.5, acc_df


# --------------------------------------------------------------------------- trace


@pytest.mark.parametrize("attack", [pgd_linf, mim_linf])
def test_trace(attack: Any, relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed[0][:8], mixed[1][:8]
    steps = 4
    x_adv, trace = traced(attack)(
        relu_model,
        x,
        y,
        eps=EPS,
        alpha=2 / 255,
        steps=steps,
        random_start=True,
        generator=_gen(),
    )
    assert isinstance(trace, Trace)
    assert trace.logits.shape == (steps + 1, 8, 10)
    for t in (trace.loss, trace.linf, trace.pred):
        assert t.shape == (steps + 1, 8)
    assert trace.steps == steps and trace.num_samples == 8
    with torch.no_grad():
        clean, final = relu_model(x), relu_model(x_adv)
    # index 0 is the clean input (δ = 0), even with a random start
    assert torch.allclose(trace.logits[0], clean, atol=1e-5)
    assert torch.equal(trace.linf[0], torch.zeros(8))
    assert torch.allclose(trace.loss[0], attack_loss(clean, y), atol=1e-5)
    # the last row is the returned point
    assert torch.allclose(trace.logits[-1], final, atol=1e-5)
    assert torch.equal(trace.pred[-1], final.argmax(1))
    assert torch.allclose(trace.linf[-1], (x_adv - x).flatten(1).abs().amax(1))
    assert (trace.linf <= EPS + 1e-6).all() and (trace.linf[1:] > 0).all()
    assert torch.equal(trace.pred, trace.logits.argmax(2))
    assert trace.labels is not None and torch.equal(trace.labels, y)
    assert trace.correct().shape == (steps + 1, 8)
    # the same seed without recording gives the same point
    again = attack(
        relu_model, x, y, eps=EPS, alpha=2 / 255, steps=steps, random_start=True, generator=_gen()
    )
    assert torch.equal(again, x_adv)
    # export
    recs = trace.to_records()
    assert len(recs) == (steps + 1) * 8
    assert {"step", "sample", "label", "pred", "loss", "linf", "logit_0", "logit_9"} <= set(recs[0])
    assert recs[-1]["step"] == steps and recs[-1]["sample"] == 7
    arrays = trace.to_numpy()
    assert arrays["logits"].shape == (steps + 1, 8, 10)
    one = trace.sample(-1)
    assert one.logits.shape == (steps + 1, 1, 10)
    assert torch.equal(one.logits[:, 0], trace.logits[:, 7])
    moved = trace.cpu()
    assert moved is not trace and moved.queries is None and moved.labels is not None
    assert torch.equal(moved.logits, trace.logits) and torch.equal(moved.labels, y)


def test_traced_records_one_run_and_leaves_others_plain(
    relu_model: nn.Module, mixed: tuple[Tensor, Tensor]
) -> None:
    x, y = mixed[0][:4], mixed[1][:4]
    # FGSM is one PGD step inside: the first attack to start claims the trace
    x_f, trace = traced(fgsm_linf)(relu_model, x, y, eps=EPS)
    assert trace.steps == 1 and torch.equal(x_f, fgsm_linf(relu_model, x, y, eps=EPS))
    # after a traced run, the same attack called plainly returns one tensor, as always
    plain = pgd_linf(relu_model, x, y, eps=EPS, alpha=0.01, steps=2, random_start=False)
    assert isinstance(plain, Tensor)
    # a run in another thread while a traced run is open never sees its trace box
    import threading

    seen: list[object] = []

    def other() -> None:
        seen.append(pgd_linf(relu_model, x, y, eps=EPS, alpha=0.01, steps=1, random_start=False))

    def attack_with_thread(*args: object, **kw: object) -> Tensor:
        t = threading.Thread(target=other)
        t.start()
        t.join()
        return pgd_linf(relu_model, x, y, eps=EPS, alpha=0.01, steps=3, random_start=False)

    _, tr = traced(attack_with_thread)()
    assert isinstance(seen[0], Tensor) and tr.steps == 3


def test_trace_without_steps(relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed
    x_adv, trace = traced(pgd_linf)(
        relu_model, x, y, eps=EPS, alpha=0.01, steps=0, random_start=False
    )
    assert torch.equal(x_adv, x)
    assert trace.logits.shape == (1, 16, 10)


# --------------------------------------------------------------------------- hygiene


def test_seeded_reproducibility(relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed
    kw: dict[str, Any] = {"eps": EPS, "alpha": 1 / 255, "steps": 2}
    state = torch.get_rng_state()
    a = pgd_linf(relu_model, x, y, generator=_gen(7), **kw)
    b = pgd_linf(relu_model, x, y, generator=_gen(7), **kw)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state), "a given generator must not use global RNG"
    c = pgd_linf(relu_model, x, y, generator=_gen(8), **kw)
    assert not torch.equal(a, c)
    d = mim_linf(relu_model, x, y, random_start=True, generator=_gen(7), **kw)
    e = mim_linf(relu_model, x, y, random_start=True, generator=_gen(7), **kw)
    assert torch.equal(d, e)
    # run_attack passes the generator through, batch after batch
    f = run_attack("pgd", relu_model, x, y, batch_size=5, generator=_gen(3), **kw)
    g = run_attack("pgd", relu_model, x, y, batch_size=5, generator=_gen(3), **kw)
    assert torch.equal(f, g)


def test_model_is_untouched(kwta_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    model = copy.deepcopy(kwta_model)
    for p in model.parameters():
        p.grad = None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    x, y = mixed[0][:4], mixed[1][:4]
    x_in = x.clone()
    for name in attack_names("standard"):
        run_attack(name, model, x, y, **FAST[name])
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k  # weights and BN running statistics
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert not model.training and not any(m.training for m in model.modules())
    assert torch.equal(x, x_in) and not x.requires_grad


def test_works_under_no_grad(relu_model: nn.Module, relu_correct: tuple[Tensor, Tensor]) -> None:
    x, y = relu_correct[0][:16], relu_correct[1][:16]
    with torch.no_grad():
        x_pgd = pgd_linf(relu_model, x, y, eps=EPS, alpha=2 / 255, steps=5, generator=_gen())
        x_df = deepfool_linf(relu_model, x, y, eps=EPS, steps=5)
        x_cw = cw_l2(relu_model, x, y, **FAST["cw"])
        assert not torch.is_grad_enabled()
    assert robust_accuracy(relu_model, x, y, x_pgd) < 0.5
    assert robust_accuracy(relu_model, x, y, x_df) < 1.0
    assert not torch.equal(x_cw, x)


def test_callbacks(relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed[0][:10], mixed[1][:10]
    calls: list[tuple[int, int]] = []

    def cb(step: int, steps: int) -> None:
        calls.append((step, steps))

    pgd_linf(relu_model, x, y, eps=EPS, alpha=0.01, steps=3, callback=cb)
    assert calls == [(1, 3), (2, 3), (3, 3)]
    calls.clear()
    mim_linf(relu_model, x, y, eps=EPS, alpha=0.01, steps=2, callback=cb)
    assert calls == [(1, 2), (2, 2)]
    calls.clear()
    cw_l2(relu_model, x, y, eps=EPS, steps=2, binary_search_steps=2, callback=cb)
    assert calls == [(i, 4) for i in range(1, 5)]
    calls.clear()
    # DeepFool reports every step even after all samples are fooled
    deepfool_linf(relu_model, x, y, eps=EPS, steps=30, callback=cb)
    assert calls == [(i, 30) for i in range(1, 31)]
    calls.clear()
    # run_attack: steps summed over batches (3 batches × 2 steps)
    run_attack("pgd", relu_model, x, y, batch_size=4, steps=2, callback=cb)
    assert calls == [(i, 6) for i in range(1, 7)]
    calls.clear()
    run_attack("fgsm", relu_model, x, y, batch_size=5, callback=cb)
    assert calls == [(1, 2), (2, 2)]


# --------------------------------------------------------------------------- registry and helpers


def test_paper_settings(relu_model: nn.Module, relu_correct: tuple[Tensor, Tensor]) -> None:
    standard = attack_names("standard")
    assert standard == ["fgsm", "pgd", "mim", "cw", "deepfool"]
    assert [n for n in standard if get_attack(n).in_paper] == ["pgd", "mim", "cw", "deepfool"]
    s = {n: dict(get_attack(n).defaults) for n in standard}
    assert all(v["eps"] == 0.031 for v in s.values())
    assert s["pgd"] == {"eps": 0.031, "alpha": 0.003, "steps": 40, "random_start": True}
    assert (s["mim"]["alpha"], s["mim"]["steps"]) == (0.003, 20)
    assert {k: s["cw"][k] for k in ("binary_search_steps", "steps", "lr", "initial_const")} == {
        "binary_search_steps": 5,
        "steps": 20,
        "lr": 0.01,
        "initial_const": 0.01,
    }
    assert (s["deepfool"]["steps"], s["deepfool"]["candidates"]) == (20, 10)
    x, y = relu_correct[0][:4], relu_correct[1][:4]
    for name in standard:
        x_adv = get_attack(name).fn(relu_model, x, y, **s[name])
        assert (x_adv - x).abs().max().item() <= 0.031 + 1e-6
        assert robust_accuracy(relu_model, x, y, x_adv) < 1.0, name


def test_registry_records() -> None:
    """One record per attack: each function takes its own defaults, names are unique,
    records are read-only and pass through ``get_attack``; unknown names are refused."""
    names = attack_names()
    assert len(names) == len(set(names)) == 10
    assert set(attack_names("adaptive")) == {"apgd-ce", "apgd-dlr", "square", "fd-pgd", "eot-pgd"}
    for name in names:
        spec = get_attack(name)
        params = inspect.signature(spec.fn).parameters
        assert set(spec.defaults) <= set(params), name
        assert spec.description and spec.max_queries() > 0, name
        assert get_attack(spec) is spec and get_attack(name.upper()) is spec
        with pytest.raises(TypeError):
            spec.defaults["eps"] = 1.0  # type: ignore[index]
    assert get_attack("pgd").settings(steps=5)["steps"] == 5
    assert get_attack("pgd").defaults["steps"] == 40  # settings() copies
    assert max_queries("pgd", {"steps": 7}) == 14 and max_queries("transfer", {}) == 0
    assert max_queries("cw", {}) == 2 * 20 * 5
    with pytest.raises(ValueError, match=r"unknown attack 'nope'.*apgd-ce"):
        get_attack("nope")


def test_run_attack_batches_like_one_call(
    relu_model: nn.Module, mixed: tuple[Tensor, Tensor]
) -> None:
    x, y = mixed
    whole = pgd_linf(relu_model, x, y, eps=EPS, alpha=2 / 255, steps=3, random_start=False)
    batched = run_attack(
        "pgd", relu_model, x, y, batch_size=6, eps=EPS, alpha=2 / 255, steps=3, random_start=False
    )
    assert batched.shape == x.shape
    # same computation per sample; allow a rare sign flip of a ~0 gradient entry
    assert (batched != whole).float().mean().item() < 1e-3
    empty = run_attack("pgd", relu_model, x[:0], y[:0])
    assert empty.shape == (0, 3, 32, 32)


def test_bad_arguments(relu_model: nn.Module, mixed: tuple[Tensor, Tensor]) -> None:
    x, y = mixed[0][:2], mixed[1][:2]
    with pytest.raises(ValueError, match="unknown attack"):
        run_attack("boundary", relu_model, x, y)
    with pytest.raises(TypeError, match="record"):  # one signature: traces come from traced()
        pgd_linf(relu_model, x, y, eps=EPS, alpha=0.01, steps=1, record=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="deepfool_linf does not record a trace"):
        traced(deepfool_linf)(relu_model, x, y, eps=EPS)
    with pytest.raises(ValueError, match="eps"):
        fgsm_linf(relu_model, x, y, eps=-0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fgsm_linf(relu_model, x * 255, y, eps=0.1)
    with pytest.raises(ValueError, match="steps"):
        pgd_linf(relu_model, x, y, eps=0.1, alpha=0.01, steps=-1)
    with pytest.raises(ValueError, match="candidate"):
        deepfool_linf(relu_model, x, y, eps=0.1, candidates=1)
    with pytest.raises(TypeError, match="seed"):
        transfer_matrix({"relu": relu_model}, x, y, generator=_gen())


def test_robust_accuracy_counts_clean_errors(
    relu_model: nn.Module, mixed: tuple[Tensor, Tensor]
) -> None:
    x, y = mixed
    ok = is_correct(relu_model, x, y)
    assert ok.dtype == torch.bool and ok.shape == (16,)
    clean = ok.float().mean().item()
    assert 0.0 < clean < 1.0
    assert robust_accuracy(relu_model, x, y, x) == pytest.approx(clean)
    assert torch.equal(is_correct(relu_model, x, y, batch_size=5), ok)
    # a perturbation cannot make a clean error count as robust
    flipped = x.flip(3)
    assert robust_accuracy(relu_model, x, y, flipped) <= clean


def test_transfer(
    relu_model: nn.Module, kwta_model: nn.Module, mixed: tuple[Tensor, Tensor]
) -> None:
    x, y = mixed
    kw: dict[str, Any] = {"eps": EPS, "alpha": 2 / 255, "steps": 3}
    models = {"relu": relu_model, "kwta": kwta_model}
    m = transfer_matrix(models, x, y, attack="pgd", seed=0, **kw)
    assert list(m) == ["relu", "kwta"] and all(list(row) == ["relu", "kwta"] for row in m.values())
    assert all(0.0 <= v <= 1.0 for row in m.values() for v in row.values())
    for name, model in models.items():
        x_adv = run_attack("pgd", model, x, y, generator=_gen(0), **kw)
        assert m[name][name] == robust_accuracy(model, x, y, x_adv)  # diagonal = white-box
    res = transfer_attack(relu_model, kwta_model, x, y, attack="pgd", generator=_gen(0), **kw)
    assert set(res) >= {"x_adv", "source_accuracy", "target_accuracy"}
    assert res["source_accuracy"] == m["relu"]["relu"]
    assert res["target_accuracy"] == m["kwta"]["relu"]  # row = target, column = source
    assert res["target_clean_accuracy"] >= res["target_accuracy"]
    # deterministic attacks need no seed
    m_fgsm = transfer_matrix(models, x, y, attack="fgsm", eps=EPS)
    assert m_fgsm["relu"]["relu"] <= robust_accuracy(relu_model, x, y, x)
