"""The fast path: the compiled and the PyTorch k-WTA agree bit for bit with the exact rule
(Sec. 2.1) in every layout and dtype; precision choices; fp32 vs bf16 parity on real images."""

from __future__ import annotations

import itertools

import pytest
import torch

from kwta import models
from kwta.data import CIFAR10Tensors
from kwta.evaluation.clean import clean_accuracy, predict
from kwta.nn import functional as F
from kwta.nn import native
from kwta.nn.precision import (
    autocast,
    channels_last_safe,
    model_is_channels_last,
    resolve_precision,
)
from kwta.training.config import TrainConfig
from kwta.training.loop import train
from kwta.training.schedules import onecycle_lr

CL = torch.channels_last


def exact_mask(x: torch.Tensor, k: int) -> torch.Tensor:
    """The rule spelled out: the k largest, ties to the lower flat index (C·H·W order)."""
    flat = x.contiguous().float().reshape(x.shape[0], -1)
    order = torch.sort(-flat, dim=1, stable=True).indices[:, :k]
    return torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, True).view(x.shape)


def make(kind: str, shape: tuple[int, ...], dtype: torch.dtype, gen: torch.Generator):
    x = torch.randn(shape, generator=gen)
    if kind == "ties":  # a coarse grid: most values are tied with others
        x = (x * 2).round() / 2
    elif kind == "zeros":  # mostly exact zeros, as after a sparse layer
        x = torch.where(torch.rand(shape, generator=gen) < 0.7, 0.0, x)
    elif kind == "constant":  # every value tied: the first k in flat order win
        x = torch.full(shape, 0.5)
    elif kind == "signed-zeros":  # -0.0 and +0.0 compare equal
        x = torch.where(torch.rand(shape, generator=gen) < 0.5, -0.0, 0.0)
    return x.to(dtype)


BACKENDS = ["torch", "native"]


@pytest.fixture(scope="module")
def native_kernel():
    kernel = native.cpu_kernel()
    if kernel is None:
        pytest.skip("no C++ toolchain here: the compiled kernel is optional")
    return kernel


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", ["randn", "ties", "zeros", "constant", "signed-zeros"])
def test_exact_in_every_layout_and_dtype(backend: str, dtype, kind: str, request) -> None:
    if backend == "native":
        request.getfixturevalue("native_kernel")
    gen = torch.Generator().manual_seed(0)
    for shape in [(3, 5), (4, 7, 3, 3), (5, 16, 8, 8), (6, 32, 4, 4)]:
        for channels_last in (False, True):
            if channels_last and len(shape) != 4:
                continue
            x = make(kind, shape, dtype, gen)
            if channels_last:
                x = x.contiguous(memory_format=CL)
            n = x[0].numel()
            for ratio in (1 / n, 0.1, 0.3, 0.5, 0.7, 1.0):
                k = F.k_from_ratio(ratio, n)
                want = exact_mask(x, k)
                mask = F.kwta_mask(x, ratio, backend=backend)
                assert torch.equal(mask, want), (shape, channels_last, ratio)
                assert int(mask.reshape(len(x), -1).sum(1).min()) == k
                xg = x.clone().requires_grad_(True)
                y = F.kwta(xg, ratio, backend=backend)
                g = torch.randn(shape, generator=gen).to(dtype)
                y.backward(g)
                zero = torch.zeros((), dtype=dtype)
                assert torch.equal(y.detach(), torch.where(want, x, zero))
                assert xg.grad is not None and torch.equal(xg.grad, torch.where(want, g, zero))
                if channels_last:  # no hidden copy to NCHW: the output keeps the layout
                    assert y.is_contiguous(memory_format=CL) and mask.is_contiguous(
                        memory_format=CL
                    )


def test_backends_agree_inside_a_network(
    kwta_model, test_sample: CIFAR10Tensors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real k-WTA network on real images: identical logits with either backend."""
    x, _ = test_sample.tensors(slice(0, 64))
    with torch.no_grad():
        auto = kwta_model(x)
    original = F.kwta

    def torch_only(v, ratio, *, per_channel=False):
        return original(v, ratio, per_channel=per_channel, backend="torch")

    monkeypatch.setattr(F, "kwta", torch_only)
    with torch.no_grad():
        assert torch.equal(kwta_model(x), auto)


def test_native_backend_refuses_what_it_cannot_do() -> None:
    x = torch.randn(2, 8, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="unavailable"):
        F.kwta(x, 0.5, backend="native")
    with pytest.raises(ValueError, match="backend"):
        F.kwta(x, 0.5, backend="fast")
    assert torch.equal(F.kwta(x, 0.5), F.kwta(x, 0.5, backend="torch"))  # auto falls back


def test_kwta_native_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KWTA_NATIVE", "0")
    assert native.native_enabled() is False and native.cpu_kernel() is None
    monkeypatch.setenv("KWTA_NATIVE", "1")
    assert native.native_enabled() is True


# --------------------------------------------------------------------------- precision


def test_resolve_precision() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "off" and resolve_precision("off", cpu) == "off"
    assert resolve_precision("bf16", cpu) == "bf16"  # honoured, even where emulated
    assert resolve_precision("fp16", cpu) == "off"  # CUDA only
    assert resolve_precision("auto", cpu) in ("bf16", "off")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", cpu)


def test_channels_last_guard() -> None:
    cpu = torch.device("cpu")
    assert channels_last_safe(models.resnet18(width=8), cpu)
    assert not channels_last_safe(models.resnet18(width=4), cpu)  # the oneDNN 1x1 bug
    m = models.resnet18(width=8)
    assert not model_is_channels_last(m)
    assert model_is_channels_last(m.to(memory_format=CL))


def test_onecycle_schedule() -> None:
    lrs = [onecycle_lr(s, 100, 0.2, 0.25) for s in range(101)]
    assert lrs[0] == pytest.approx(0.2 / 25) and max(lrs) == pytest.approx(0.2)
    assert lrs.index(max(lrs)) == 25 and lrs[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a <= b for a, b in itertools.pairwise(lrs[:26]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[25:]))


def test_bf16_and_fp32_training_reach_the_same_loss(
    train_sample: CIFAR10Tensors, test_sample: CIFAR10Tensors
) -> None:
    """60 steps from the same seed: final-pass losses within 0.15, accuracies within 8 points.

    (bf16 is emulated on an AVX2 CPU and about 8x slower there; parity is what is tested.)
    """
    results = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(
            width=8,
            act="relu",
            epochs=6,
            batch_size=32,
            lr=0.05,
            schedule="onecycle",
            subset=320,
            eval_n=500,
            amp=precision,
            seed=0,
        )
        _, card = train(cfg, train_data=train_sample, test_data=test_sample)
        assert card["training"]["amp"] == ("off" if precision == "fp32" else "bf16")
        results[precision] = card
    h32 = results["fp32"]["training"]["history"]
    h16 = results["bf16"]["training"]["history"]
    assert h32[-1]["loss"] < h32[0]["loss"] and h16[-1]["loss"] < h16[0]["loss"]
    assert abs(h32[-1]["loss"] - h16[-1]["loss"]) < 0.15
    a32 = results["fp32"]["metrics"]["clean_accuracy"]
    a16 = results["bf16"]["metrics"]["clean_accuracy"]
    assert abs(a32 - a16) < 0.08


def test_bf16_evaluation_of_a_shipped_model(test_sample: CIFAR10Tensors) -> None:
    """A shipped ReLU model on 300 real test images: bf16 and fp32 agree on >= 99 % of the
    predictions; evaluation itself stays in fp32 (its default), for k-WTA's sake."""
    from kwta import load_pretrained

    model = load_pretrained("relu-nat")
    x, y = test_sample.tensors(test_sample.balanced_indices(300, seed=1))
    p32 = predict(model, x, precision="fp32")
    p16 = predict(model, x, precision="bf16")
    assert float((p32 == p16).float().mean()) >= 0.99
    idx = test_sample.balanced_indices(300, seed=1)
    assert clean_accuracy(model, test_sample, indices=idx) == int((p32 == y).sum()) / len(y)
    with autocast(torch.device("cpu"), "bf16"):
        assert model(x[:4]).dtype == torch.bfloat16
