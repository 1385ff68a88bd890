"""k-WTA, LWTA and the registry (Sec. 2.1, Eq. 1; App. D.3)."""

from __future__ import annotations

import math

import pytest
import torch

import kwta
from kwta import models
from kwta.nn import functional as F
from kwta.nn.registry import registered_acts


def _k(ratio: float, n: int) -> int:
    return max(1, math.floor(ratio * n + 1e-9))


@pytest.mark.parametrize("shape", [(4, 100), (3, 16, 8, 8), (2, 7, 5, 3)])
@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.29, 0.5, 0.75, 1.0])
def test_exactly_k_winners_random(shape: tuple[int, ...], ratio: float) -> None:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    n = math.prod(shape[1:])
    mask = F.kwta_mask(x, ratio)
    assert mask.flatten(1).sum(1).tolist() == [_k(ratio, n)] * shape[0]
    # winners are exactly the k largest: the smallest winner >= the largest loser
    flat, m = x.flatten(1), mask.flatten(1)
    for row, mrow in zip(flat, m, strict=True):
        if (~mrow).any():
            assert row[mrow].min() >= row[~mrow].max()
    out = F.kwta(x, ratio)
    assert torch.equal(out, torch.where(mask, x, torch.zeros_like(x)))


def test_matches_sorting_definition() -> None:
    """Eq. 1 by brute force: stable sort by value descending, first k indices win."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(-3, 4, (16, 40), generator=gen).float()  # many ties
    for ratio in (0.05, 0.1, 0.3, 0.6):
        k = _k(ratio, 40)
        expected = torch.zeros_like(x, dtype=torch.bool)
        for i, row in enumerate(x):
            order = sorted(range(40), key=lambda j, r=row: (-float(r[j]), j))
            expected[i, order[:k]] = True
        assert torch.equal(F.kwta_mask(x, ratio), expected)


def test_ties_broken_towards_lower_index() -> None:
    x = torch.tensor([[5.0, 1.0, 2.0, 2.0, 2.0, 2.0, 0.0, 2.0]])
    # k = 4: 5 wins, then three of the five 2s — the three with the lowest indices.
    out = F.kwta(x, 0.5)
    assert out.tolist() == [[5.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0]]
    # constant input: exactly k survive, the first k
    z = torch.ones(2, 3, 4, 4)
    mask = F.kwta_mask(z, 0.1)
    assert mask.flatten(1).sum(1).tolist() == [4, 4]
    assert mask.flatten(1)[:, :4].all()


def test_reference_keeps_every_tie() -> None:
    """The authors' formulation lets ties through (why we do not copy it)."""
    z = torch.ones(2, 4, 4, 4)
    assert (F.kwta_reference(z, 0.1) != 0).sum() == z.numel()  # every tied value survives
    assert (F.kwta(z, 0.1) != 0).flatten(1).sum(1).tolist() == [6, 6]  # exactly k
    x = torch.tensor([[3.0, 2.0, 2.0, 2.0, 1.0]])
    assert (F.kwta_reference(x, 0.4) != 0).sum() == 4  # k = 2, yet 4 survive
    assert (F.kwta(x, 0.4) != 0).sum() == 2


def test_reference_agrees_without_ties() -> None:
    x = torch.randn(8, 32, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(F.kwta(x, 0.1), F.kwta_reference(x, 0.1))


def test_negative_winners_keep_their_sign() -> None:
    x = -torch.arange(1.0, 11.0).view(1, 10)  # all negative
    assert F.kwta(x, 0.2).tolist() == [[-1.0, -2.0] + [0.0] * 8]


def test_gradient_flows_to_winners_only() -> None:
    x = torch.randn(3, 8, 4, 4, requires_grad=True)
    w = torch.randn(3, 8, 4, 4)
    (F.kwta(x, 0.1) * w).sum().backward()
    mask = F.kwta_mask(x.detach(), 0.1)
    assert x.grad is not None
    assert torch.equal(x.grad, torch.where(mask, w, torch.zeros_like(w)))


def test_per_channel_mode() -> None:
    x = torch.randn(2, 5, 6, 6, generator=torch.Generator().manual_seed(2))
    mask = F.kwta_mask(x, 0.25, per_channel=True)
    assert (mask.flatten(2).sum(2) == 9).all()  # floor(0.25 * 36) per channel
    for b in range(2):
        for c in range(5):
            assert torch.equal(mask[b, c], F.kwta_mask(x[b : b + 1, c : c + 1], 0.25)[0, 0])
    with pytest.raises(ValueError):
        F.kwta_mask(torch.randn(2, 10), 0.1, per_channel=True)


def test_lwta_one_winner_per_group() -> None:
    x = torch.randn(4, 12, 3, 3, generator=torch.Generator().manual_seed(5))
    mask = F.lwta_mask(x, 5)  # groups of 5, 5, 2 channels
    groups = [mask[:, 0:5], mask[:, 5:10], mask[:, 10:12]]
    for g, sl in zip(groups, [slice(0, 5), slice(5, 10), slice(10, 12)], strict=True):
        assert (g.sum(1) == 1).all()
        assert torch.equal(g.float().argmax(1), x[:, sl].argmax(1))
    y = torch.tensor([[1.0, 3.0, 3.0, 0.0]])
    assert F.lwta(y, 4).tolist() == [[0.0, 3.0, 0.0, 0.0]]  # tie → lower index
    with pytest.raises(ValueError):
        kwta.LWTA(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lwta_channels_last_gives_the_same_winners(dtype: torch.dtype) -> None:
    """The channels-last path (the fast path's layout) keeps the winners and the tie rule."""
    gen = torch.Generator().manual_seed(0)
    for c, size in ((16, 10), (12, 5), (7, 3), (64, 10), (5, 1)):
        x = torch.randn(3, c, 4, 5, generator=gen).round(decimals=1).to(dtype)  # many ties
        x[:, :, 0, 0] = 1.0  # every group tied
        cl = x.contiguous(memory_format=torch.channels_last)
        assert not cl.is_contiguous()  # so lwta_mask takes its channels-last path for cl
        assert not x.is_contiguous(memory_format=torch.channels_last)  # and the other for x
        assert torch.equal(F.lwta_mask(cl, size), F.lwta_mask(x, size)), (c, size)
        assert F.lwta_mask(cl, size)[:, :size, 0, 0].float().argmax(1).eq(0).all()  # lowest
        assert torch.equal(F.lwta(cl, size), F.lwta(x, size))


def test_registry_and_modules() -> None:
    assert registered_acts() == ["kwta", "lwta", "relu"]
    assert isinstance(kwta.create_act("relu"), kwta.ReLU)
    k = kwta.create_act("KWTA", ratio=0.2, per_channel=True)
    assert isinstance(k, kwta.KWTA) and k.ratio == 0.2 and k.per_channel
    assert isinstance(kwta.create_act("lwta", group_size=5), kwta.LWTA)
    with pytest.raises(ValueError, match="unknown activation"):
        kwta.create_act("swish")
    with pytest.raises(ValueError, match="bad arguments"):
        kwta.create_act("relu", ratio=0.1)
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(kwta.create_act("relu")(x), torch.relu(x))


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), "0.1", True])
def test_ratio_validation(bad: object) -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        kwta.KWTA(bad)  # type: ignore[arg-type]
    model = models.resnet18(width=4, act="kwta", act_kwargs={"ratio": 0.2})
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        kwta.set_ratio(model, bad)  # type: ignore[arg-type]
    assert kwta.get_ratio(model) == 0.2  # a failed call changes nothing


def test_set_ratio_sets_every_layer() -> None:
    model = models.resnet18(width=4, act="kwta", act_kwargs={"ratio": 0.2})
    n = kwta.set_ratio(model, 0.1)
    assert n == 17  # stem + 2 per BasicBlock × 8 blocks
    assert kwta.get_ratio(model) == 0.1
    assert kwta.set_ratio(models.resnet18(width=4), 0.1) == 0
    assert kwta.get_ratio(models.resnet18(width=4)) is None


def test_kwta_network_is_sparse_at_every_layer(test_sample) -> None:  # type: ignore[no-untyped-def]
    model = models.resnet18(width=8, act="kwta", act_kwargs={"ratio": 0.1}).eval()
    x, _ = test_sample.tensors(range(4))
    counts: list[tuple[int, int]] = []

    def hook(_m, _inp, out):  # type: ignore[no-untyped-def]
        counts.append(((out != 0).flatten(1).sum(1).max().item(), out[0].numel()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, kwta.KWTA)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    assert len(counts) == 17
    for nonzero, n in counts:
        assert nonzero <= _k(0.1, n)


@pytest.mark.parametrize("shape", [(0, 8), (0, 4, 3, 3)])
def test_an_empty_batch_gives_an_empty_result(shape: tuple[int, ...]) -> None:
    """No sample, no winners: an empty result (and gradient) on every CPU backend, per channel
    too, in the input's layout; a k-WTA network answers an empty batch with no logits."""
    from kwta.nn import native

    backends = ["torch", "auto"] + (["native"] if native.cpu_kernel() is not None else [])
    for backend in backends:
        x = torch.empty(*shape, requires_grad=True)
        y = F.kwta(x, 0.5, backend=backend)
        y.sum().backward()
        assert y.shape == shape and x.grad is not None and x.grad.shape == shape
        assert F.kwta_mask(x, 0.5, backend=backend).dtype == torch.bool
    if len(shape) == 4:
        assert F.kwta(torch.empty(*shape), 0.5, per_channel=True).shape == shape
        cl = torch.empty(*shape).to(memory_format=torch.channels_last)
        assert F.kwta_mask(cl, 0.5).is_contiguous(memory_format=torch.channels_last)
    net = models.resnet18(width=4, act="kwta", act_kwargs={"ratio": 0.1}).eval()
    with torch.no_grad():
        assert net(torch.empty(0, 3, 32, 32)).shape == (0, 10)
