"""The CUDA k-WTA kernel (Triton): on a GPU where there is one, else on the CPU through Triton's
interpreter (``conftest.py`` sets ``TRITON_INTERPRET=1`` before anything imports Triton when
no GPU is visible).

The same kernel source the GPU compiles: exact by the Sec. 2.1 rule in every layout and
dtype (the exactness matrix of ``test_fastpath.py``, smaller), gradients to the winners only,
and bit-identical to the compiled CPU kernel on a real k-WTA network's activations.
"""

from __future__ import annotations

import pytest
import torch
from test_fastpath import exact_mask, make

from kwta import load_pretrained
from kwta.data import CIFAR10Tensors
from kwta.nn import functional as F
from kwta.nn import native
from kwta.nn.activations import KWTA
from kwta.nn.native import triton_kwta

CL = torch.channels_last

pytest.importorskip("triton", reason="Triton ships with PyTorch's CUDA builds")


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module", autouse=True)
def runnable() -> None:
    if DEVICE == "cpu" and not triton_kwta.interpreting():
        pytest.fail("no GPU and no TRITON_INTERPRET=1: conftest.py should have set it")
    assert triton_kwta.available(), "the Triton kernel does not build here"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", ["randn", "ties", "zeros", "constant", "signed-zeros"])
def test_exact_in_every_layout_and_dtype(dtype: torch.dtype, kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    for shape in [(3, 5), (4, 7, 3, 3), (3, 16, 8, 8)]:
        for channels_last in (False, True):
            if channels_last and len(shape) != 4:
                continue
            x = make(kind, shape, dtype, gen)
            if channels_last:
                x = x.contiguous(memory_format=CL)
            n = x[0].numel()
            for ratio in (1 / n, 0.1, 0.7, 1.0):
                k = F.k_from_ratio(ratio, n)
                want = exact_mask(x, k)
                xg = x.to(DEVICE).requires_grad_(True)
                y = F.kwta(xg, ratio, backend="triton")
                g = (torch.rand(shape, generator=gen) + 1).to(dtype)  # never 0: grad shows mask
                y.backward(g.to(DEVICE))
                zero = torch.zeros((), dtype=dtype)
                assert xg.grad is not None
                assert torch.equal(xg.grad.cpu() != 0, want), (shape, channels_last, ratio)
                assert torch.equal(y.detach().cpu(), torch.where(want, x, zero))
                if channels_last:
                    assert y.is_contiguous(memory_format=CL)
                    assert xg.grad.is_contiguous(memory_format=CL)
    x = make(kind, (4, 7, 3, 3), dtype, gen).to(DEVICE)  # the mask function, once
    assert torch.equal(F.kwta_mask(x, 0.3, backend="triton").cpu(), exact_mask(x.cpu(), 18))


def test_rows_longer_than_a_block() -> None:
    """A row of 2.5 blocks (the kernel walks it block by block) with surplus ties in the
    last block: the tie pass's running rank carries across blocks."""
    n = int(triton_kwta.BLOCK * 2.5)
    x = torch.zeros(2, n)
    x[:, :100] = torch.arange(100, 0, -1, dtype=torch.float32)
    x[:, -50:] = 0.5  # the k-th value's ties sit past two blocks
    x[1, n // 2] = 0.5
    k = 120
    mask = F.kwta_mask(x.to(DEVICE), k / n + 1e-7, backend="triton")
    assert torch.equal(mask.cpu(), exact_mask(x, k))


@pytest.mark.skipif(DEVICE == "cuda", reason="the CPU's refusals")
def test_refuses_what_it_cannot_do(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="Triton"):
        F.kwta(torch.randn(2, 8, dtype=torch.float64), 0.5, backend="triton")
    strided = torch.randn(2, 8, 4)[:, ::2]  # neither contiguous nor channels-last
    with pytest.raises(RuntimeError, match="Triton"):
        F.kwta(strided, 0.5, backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # on the CPU it runs only interpreted
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        F.kwta(torch.randn(2, 8), 0.5, backend="triton")
    x = torch.randn(2, 8)
    assert F._pick(x, "auto") != ("triton", False)  # auto never picks it on the CPU


@pytest.fixture(scope="module")
def activations(test_sample: CIFAR10Tensors) -> list[torch.Tensor]:
    """The input of every k-WTA layer of the shipped kwta0.1-nat on 2 real test images."""
    model = load_pretrained("kwta0.1-nat")
    seen: list[torch.Tensor] = []
    hooks = [
        m.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
        for m in model.modules()
        if isinstance(m, KWTA)
    ]
    x, _ = test_sample.tensors(range(2))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    assert len(seen) >= 10
    return seen


@pytest.mark.parametrize("channels_last", [False, True])
def test_bit_identical_to_the_cpu_kernel_on_a_real_network(
    activations: list[torch.Tensor], channels_last: bool
) -> None:
    if native.cpu_kernel() is None:
        pytest.skip("no C++ toolchain here: the compiled kernel is optional")
    for a in activations:
        x = a.contiguous(memory_format=CL) if channels_last and a.dim() == 4 else a
        for dtype in (torch.float32, torch.bfloat16):
            v = x.to(dtype)
            y_native = F.kwta(v, 0.1, backend="native")
            y_triton = F.kwta(v.to(DEVICE), 0.1, backend="triton").cpu()
            assert torch.equal(y_native, y_triton), (tuple(a.shape), dtype)
            assert y_triton.stride() == y_native.stride()


def test_nan_ranks_the_same_on_every_backend() -> None:
    """+NaN ranks above +inf, −NaN below −inf, on every backend: exactly k winners (a float
    comparison in the PyTorch path used to keep fewer)."""
    nan = float("nan")
    x = torch.tensor(
        [[1.0, nan, 3.0, -nan, float("inf"), -0.0, 0.0, float("-inf")],
         [nan, nan, 2.0, 2.0, -1.0, -nan, 5.0, 0.5]]
    )  # fmt: skip
    x[0, 3] = -x[0, 3].abs()  # a NaN with its sign bit set
    x[1, 5] = -x[1, 5].abs()
    for ratio, winners in ((0.25, [[1, 4], [0, 1]]), (0.5, [[1, 2, 4, 0], [0, 1, 6, 2]])):
        masks = {b: F.kwta_mask(x, ratio, backend=b) for b in ("torch", "native", "triton")}
        for b, m in masks.items():
            assert m.sum(1).tolist() == [len(w) for w in winners], b
            assert [sorted(r.nonzero().flatten().tolist()) for r in m] == [
                sorted(w) for w in winners
            ], (b, ratio)
    for dtype in (torch.bfloat16, torch.float16):
        xd = x.to(dtype)
        ref = F.kwta_mask(xd, 0.5, backend="torch")
        assert torch.equal(F.kwta_mask(xd, 0.5, backend="native"), ref)
        assert torch.equal(F.kwta_mask(xd, 0.5, backend="triton"), ref)


def test_per_channel_runs_the_kernel_on_the_channels_rows() -> None:
    gen = torch.Generator().manual_seed(1)
    x = make("ties", (2, 5, 4, 4), torch.float32, gen)
    for ratio in (0.1, 0.5):
        want = F.kwta_mask(x, ratio, per_channel=True, backend="torch")
        assert want.view(10, 16).sum(1).tolist() == [F.k_from_ratio(ratio, 16)] * 10
        for backend in ("native", "triton"):
            assert torch.equal(F.kwta_mask(x, ratio, per_channel=True, backend=backend), want)
            xg = x.clone().requires_grad_(True)
            y = F.kwta(xg, ratio, per_channel=True, backend=backend)
            y.sum().backward()
            assert torch.equal(y.detach(), torch.where(want, x, torch.zeros(())))
            assert xg.grad is not None and torch.equal(xg.grad != 0, want)
    with pytest.raises(RuntimeError, match="Triton"):  # what the kernel cannot do, it says
        F.kwta(x.double(), 0.1, per_channel=True, backend="triton")


def test_a_kernel_that_fails_to_launch_falls_back_with_one_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("simulated: ptxas fatal error while compiling kwta_kernel")

    mode = triton_kwta.interpreting()
    monkeypatch.setitem(triton_kwta._kernels, mode, broken)
    monkeypatch.setattr(triton_kwta, "_failures", [])
    x = make("ties", (3, 4, 5, 5), torch.float32, torch.Generator().manual_seed(2))
    want = F.kwta(x, 0.2, backend="torch")
    with pytest.warns(RuntimeWarning, match="failed to compile or launch .*ptxas"):
        y = F.kwta(x.clone().requires_grad_(True), 0.2, backend="triton")
    assert torch.equal(y.detach(), want)  # the PyTorch path's result: identical
    assert not triton_kwta.available() and len(triton_kwta._failures) == 1
    assert F._pick(x, "auto") != ("triton", False)
    with pytest.raises(RuntimeError, match="unavailable"):  # asked for by name: it says so
        F.kwta(x, 0.2, backend="triton")


def test_an_empty_batch_gives_an_empty_result() -> None:
    for shape in [(0, 8), (0, 4, 3, 3)]:
        x = torch.empty(shape, requires_grad=True)
        y = F.kwta(x, 0.5, backend="triton")
        assert y.shape == x.shape and F.kwta_mask(x, 0.5, backend="triton").shape == x.shape
        y.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape
    x4 = torch.empty(0, 4, 3, 3)
    assert F.kwta(x4, 0.5, per_channel=True, backend="triton").shape == x4.shape
