"""Attacks on the fast path (kwta.attacks._steps): channels-last gives NCHW's numbers, reduced
precision changes only the steps, everything a user reads is fp32, and the shared model is
never touched. Shipped zoo models, bundled real test images."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch
from torch import nn

from kwta.attacks import attack_names, is_correct, run_attack, traced
from kwta.attacks._steps import resolve_step_precision, step_models
from kwta.attacks.apgd import apgd_linf
from kwta.attacks.estimated import eot_pgd_linf
from kwta.attacks.sign_gradient import pgd_linf
from kwta.attacks.square import square_linf
from kwta.data import cifar10_sample
from kwta.nn.precision import memory_layout
from kwta.zoo.hub import load_pretrained

EPS = 8 / 255

#: Small budgets: every attack of the registry, a few steps each.
BUDGETS: dict[str, dict[str, Any]] = {
    "pgd": {"steps": 5},
    "mim": {"steps": 5},
    "cw": {"steps": 5, "binary_search_steps": 2},
    "deepfool": {"steps": 5},
    "apgd-ce": {"steps": 10},
    "apgd-dlr": {"steps": 10},
    "square": {"queries": 50},
    "fd-pgd": {"steps": 3, "samples": (10, 10)},
    "eot-pgd": {"steps": 3, "samples": (4, 4)},
}
SEEDED = {"pgd", "mim", "apgd-ce", "apgd-dlr", "square", "fd-pgd", "eot-pgd"}


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = cifar10_sample("test").tensors()
    return x[:16], y[:16]


@pytest.fixture(scope="module", params=["relu-nat", "kwta0.1-nat"])
def model(request: pytest.FixtureRequest) -> nn.Module:
    return load_pretrained(request.param)


def _run(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> torch.Tensor:
    seed: dict[str, Any] = {"generator": torch.Generator().manual_seed(0)} if name in SEEDED else {}
    return run_attack(name, model, x, y, eps=EPS, **seed, **BUDGETS.get(name, {}), **kw)


def test_every_attack_is_covered() -> None:
    assert set(attack_names()) == set(BUDGETS) | {"fgsm"}


_ALL = sorted(set(BUDGETS) | {"fgsm"})
#: k-WTA (where layouts could move a winner) in the fast tier, ReLU in the slow one.
_MATRIX = [pytest.param("kwta0.1-nat", a, id=f"kwta0.1-nat-{a}") for a in _ALL] + [
    pytest.param("relu-nat", a, id=f"relu-nat-{a}", marks=pytest.mark.slow) for a in _ALL
]


@functools.cache
def _shipped(model_name: str) -> nn.Module:
    return load_pretrained(model_name)


@pytest.mark.parametrize(("model_name", "name"), _MATRIX)
def test_channels_last_gives_the_nchw_numbers(
    model_name: str, name: str, images: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model = _shipped(model_name)
    x, y = images
    with memory_layout("nchw"):
        ref = _run(name, model, x, y, precision="fp32")
    fast = _run(name, model, x, y, precision="fp32")
    assert fast.is_contiguous() and fast.shape == ref.shape
    # the verdict a user reads, image by image
    assert torch.equal(is_correct(model, fast, y), is_correct(model, ref, y))
    close = (fast - ref).abs() <= 1e-5
    if name != "fd-pgd":  # differences through k-WTA's jumps amplify rounding; verdicts agree
        assert float(close.float().mean()) >= 0.999, name


def test_bf16_steps_change_the_steps_but_the_trace_is_fp32(
    model: nn.Module, images: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = images
    g = torch.Generator().manual_seed(0)
    pgd = traced(pgd_linf)
    x32, _ = pgd(model, x, y, eps=EPS, alpha=2 / 255, steps=5, generator=g, precision="fp32")
    g = torch.Generator().manual_seed(0)
    x16, t16 = pgd(model, x, y, eps=EPS, alpha=2 / 255, steps=5, generator=g, precision="bf16")
    assert not torch.equal(x16, x32)  # the steps did run in bf16
    views = step_models(model, x, "bf16")
    with torch.no_grad():
        clean32, last32 = model(x), model(x16)
        last16 = views.step(x16)
    # rows 0 and -1 are the fp32 logits of the clean input and of the returned point
    assert torch.allclose(t16.logits[0], clean32, atol=1e-4)
    assert torch.allclose(t16.logits[-1], last32, atol=1e-4)
    assert not torch.allclose(t16.logits[-1], last16, atol=1e-4)  # not the bf16 ones
    assert torch.equal(t16.pred[-1], last32.argmax(1))


def test_apgd_and_square_verdicts_are_fp32_under_bf16(
    model: nn.Module, images: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, y = images
    for attack, kw in ((apgd_linf, {"steps": 10}), (square_linf, {"queries": 60})):
        g = torch.Generator().manual_seed(1)
        x_adv, trace = traced(attack)(model, x, y, eps=EPS, generator=g, precision="bf16", **kw)
        with torch.no_grad():
            logits = model(x_adv)
        broken = trace.pred[-1] != y
        # an image the trace calls broken is misclassified by the fp32 model at the returned point
        assert bool((logits.argmax(1)[broken] != y[broken]).all()), attack.__name__
    g = torch.Generator().manual_seed(1)
    eot = traced(eot_pgd_linf)
    _, trace = eot(model, x, y, eps=EPS, steps=2, samples=(4, 4), generator=g, precision="bf16")
    with torch.no_grad():
        assert torch.allclose(trace.logits[0], model(x), atol=1e-4)


def test_the_shared_model_is_never_touched(images: tuple[torch.Tensor, torch.Tensor]) -> None:
    model = load_pretrained("kwta0.1-nat")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = images
    for precision in ("fp32", "bf16", "auto"):
        _run("pgd", model, x, y, precision=precision)
        _run("apgd-ce", model, x, y, precision=precision)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(v.is_contiguous() for v in after.values())  # still NCHW, as loaded
    assert not model.training and all(p.grad is None for p in model.parameters())


def test_precision_names_are_checked(images: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = images
    model = load_pretrained("relu-nat")
    with pytest.raises(ValueError, match="precision must be one of"):
        pgd_linf(model, x, y, eps=EPS, alpha=EPS / 4, steps=1, precision="fp64")
    with pytest.raises(ValueError, match="layout must be"), memory_layout("nhwc"):  # type: ignore[arg-type]
        pass
    cpu = torch.device("cpu")
    assert resolve_step_precision("fp32", cpu) == "off"
    assert resolve_step_precision("bf16", cpu) == "bf16"  # honoured on any CPU
    assert step_models(model, x, "fp32").precision == "fp32"
    assert step_models(model, x, "bf16").precision == "bf16"


def test_a_bf16_page_result_records_what_ran_and_reproduces(tmp_path: Any) -> None:
    """The Live attack with bf16 steps: the run says so, its provenance records "bf16" (never
    "auto"), its live rows are the trace's, and kwta reproduce reruns it exactly."""
    import json

    from kwta.explorer.actions import ActionInputs, get_action
    from kwta.explorer.provenance import (
        ModelRef,
        Provenance,
        dataset_image,
        make_provenance,
        result_document,
    )
    from kwta.explorer.reproduce import reproduce
    from kwta.explorer.runs import attack_with_trace
    from kwta.zoo.hub import list_pretrained

    data = cifar10_sample("test")
    x, y = data.tensors([5])
    model = load_pretrained("kwta0.1-nat")
    live: list[torch.Tensor] = []
    run = attack_with_trace(
        model,
        x[0],
        int(y[0]),
        eps=EPS,
        alpha=2 / 255,
        steps=6,
        random_start=True,
        precision="bf16",
        callback=lambda step, total, logits, linf: live.append(logits),
    )
    assert run.precision == "bf16" and run.trace.steps == 6
    assert torch.equal(live[-1], run.trace.logits[:, 0])  # the final rows are the trace
    assert all(len(rows) == min(i + 1, 6) for i, rows in enumerate(live[:-1]))
    with torch.no_grad():
        assert torch.allclose(run.trace.logits[-1, 0], model(run.x_adv)[0], atol=1e-4)
    sha = list_pretrained()["kwta0.1-nat"]["sha256"]
    for asked, recorded, dtype in (("auto", "fp32", "float32"), ("bf16", "bf16", "bfloat16")):
        prov = make_provenance(
            "attack",
            {"steps": 6, "precision": asked},
            model=ModelRef("kwta0.1-nat", sha),
            image=dataset_image(data, 5),
            device="cpu",
        )
        assert prov.settings["precision"] == recorded and prov.precision == dtype
    inputs = ActionInputs(model, x, int(y[0]))
    result = get_action("attack").run(inputs, prov.settings)
    assert result.precision == "bf16"
    doc = json.loads(json.dumps(result_document(prov, result, inputs)))
    assert doc["provenance"]["precision"] == "bfloat16"
    rep = reproduce(doc)
    assert rep.exact and rep.passed, rep.report()
    # a result made before precision was a setting reruns in what its provenance says
    del doc["provenance"]["settings"]["precision"]
    doc["provenance"]["precision"] = "float32"
    assert Provenance.from_dict(doc["provenance"]).settings["precision"] == "fp32"


def test_an_evaluation_records_what_its_steps_ran_in() -> None:
    from kwta.evaluation.robust import evaluate

    model = load_pretrained("relu-nat")
    data = cifar10_sample("test")
    plain = evaluate(model, data, attacks=("pgd", "deepfool"), n=10, clean_n=1)
    assert plain["attacks"]["pgd"]["steps_precision"] == "fp32"  # "auto", resolved
    bf16 = evaluate(
        model, data, attacks=("pgd",), n=10, clean_n=1, overrides={"pgd": {"precision": "bf16"}}
    )
    assert bf16["attacks"]["pgd"]["steps_precision"] == "bf16"
    assert bf16["attacks"]["pgd"]["settings"]["precision"] == "bf16"
