"""The loss on the plane that holds PGD's walk (:mod:`kwta.analysis.attack_plane`), on real
CIFAR-10 images and the trained fixture models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kwta.analysis._common import per_sample_loss, rademacher
from kwta.analysis.attack_plane import AttackPlane, attack_plane
from kwta.data import CIFAR10Tensors
from kwta.explorer.runs import attack_with_trace

EPS = 0.031
IMAGE = 7


def _walk(model: nn.Module, test_sample: CIFAR10Tensors, steps: int = 10):
    x, y = test_sample.tensors([IMAGE])
    run = attack_with_trace(
        model, x[0], int(y[0]), eps=EPS, alpha=0.007, steps=steps, keep_path=True
    )
    return x[0], int(y[0]), run


def test_the_run_keeps_every_steps_perturbation(
    relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, _, run = _walk(relu_model, test_sample)
    assert run.path is not None and run.path.shape == (11, 3, 32, 32)
    assert torch.equal(run.path[0], torch.zeros(3, 32, 32))
    assert torch.allclose(run.path.flatten(1).abs().amax(1), run.trace.linf[:, 0])
    assert torch.allclose(run.path[-1], (run.x_adv - run.x)[0])
    plain = attack_with_trace(relu_model, x, int(run.label), eps=EPS, alpha=0.007, steps=10)
    assert plain.path is None and torch.equal(plain.x_adv, run.x_adv)


@pytest.mark.parametrize("second", ["gradient", "random"])
def test_geometry(relu_model: nn.Module, test_sample: CIFAR10Tensors, second: str) -> None:
    """δ_T and in-plane steps project to themselves, the path starts at the origin, the grid's
    loss is the model's loss at that point of the plane, and the ε-box is the ball's slice."""
    x, y, run = _walk(relu_model, test_sample)
    assert run.path is not None
    end = run.path[-1]
    r = rademacher((3, 32, 32), torch.Generator().manual_seed(3))
    inside = 0.4 * end + 0.002 * r  # in span{δ_T, r}: on the plane when r is the 2nd direction
    path = torch.cat([run.path[:1], inside[None], run.path[1:]]) if second == "random" else run.path
    plane = attack_plane(relu_model, x, y, path, eps=EPS, second=second, grid=7, seed=3)
    assert isinstance(plane, AttackPlane) and plane.second == second
    assert plane.loss.shape == (7, 7) and plane.a.shape == plane.b.shape == (7,)
    # orthogonal directions in pixel units
    assert abs(float((plane.u * plane.v).sum())) < 1e-4
    assert float(plane.u.abs().amax()) == pytest.approx(1.0)
    assert float(plane.v.abs().amax()) == pytest.approx(1.0)
    # the path: from the origin to (‖δ_T‖∞, 0), the end point on the plane
    t_end = len(path) - 1
    assert torch.equal(plane.path[0], torch.zeros(2))
    assert plane.path[t_end, 0] == pytest.approx(float(end.abs().amax()), rel=1e-5)
    assert plane.path[t_end, 1] == pytest.approx(0.0, abs=1e-6)
    assert float(plane.off_plane[0]) == 0.0 and float(plane.off_plane[t_end]) < 1e-6
    assert plane.projected_loss[t_end] == pytest.approx(float(plane.path_loss[t_end]), rel=1e-4)
    if second == "random":  # the in-plane point comes back where it was put
        assert float(plane.off_plane[1]) < 1e-6
        back = plane.path[1, 0] * plane.u + plane.path[1, 1] * plane.v
        assert torch.allclose(back, inside, atol=1e-6)
    else:  # PGD's middle steps leave the plane
        assert float(plane.off_plane[1:-1].max()) > 1e-3
    # the grid: odd, centred on x, and its value is the loss at that point of the plane
    assert float(plane.a[3]) == 0.0 and float(plane.loss[3, 3]) == pytest.approx(
        plane.clean_loss, rel=1e-4
    )
    for i, j in ((0, 6), (5, 2)):
        pt = (x + plane.a[i] * plane.u + plane.b[j] * plane.v).clamp(0, 1)[None]
        with torch.no_grad():
            want = float(per_sample_loss(relu_model(pt), torch.tensor([y]), "ce")[0])
        assert float(plane.loss[i, j]) == pytest.approx(want, rel=1e-4, abs=1e-5)
    # the ε-box: every vertex on the ball's surface, reaching ε along u
    for a, b in plane.box[::20]:
        assert float((a * plane.u + b * plane.v).abs().amax()) == pytest.approx(EPS, rel=1e-4)
    assert float(plane.box[0, 0]) == pytest.approx(EPS, rel=1e-5)
    assert float(plane.a[-1]) >= EPS  # the box is inside the grid


def test_seeded_exact_and_model_untouched(
    kwta_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, y, run = _walk(kwta_model, test_sample)
    assert run.path is not None
    before = {k: v.clone() for k, v in kwta_model.state_dict().items()}
    one = attack_plane(kwta_model, x, y, run.path, eps=EPS, second="random", grid=5, seed=1)
    two = attack_plane(kwta_model, x, y, run.path, eps=EPS, second="random", grid=5, seed=1)
    other = attack_plane(kwta_model, x, y, run.path, eps=EPS, second="random", grid=5, seed=2)
    assert torch.equal(one.loss, two.loss) and torch.equal(one.path, two.path)
    assert not torch.equal(one.v, other.v)
    assert all(torch.equal(v, kwta_model.state_dict()[k]) for k, v in before.items())
    assert not kwta_model.training
    d = one.to_dict()
    assert d["second"] == "random" and len(d["loss"]) == 5 and "u" not in d


def test_a_gradient_parallel_to_the_end_point_falls_back_to_random(
    relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    """An end point along the gradient's sign (one FGSM step) spans no plane with it."""
    x, y = test_sample.tensors([IMAGE])
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(per_sample_loss(relu_model(xg), y, "ce").sum(), xg)
    step = EPS * grad.sign()[0]
    path = torch.stack([torch.zeros_like(step), step])
    plane = attack_plane(relu_model, x[0], int(y[0]), path, eps=EPS, grid=3)
    assert plane.second == "random"
    assert abs(float((plane.u * plane.v).sum())) < 1e-4


def test_bad_arguments(relu_model: nn.Module, test_sample: CIFAR10Tensors) -> None:
    x, y = test_sample.tensors([IMAGE])
    still = torch.zeros(3, 3, 32, 32)
    with pytest.raises(ValueError, match="never left"):
        attack_plane(relu_model, x[0], int(y[0]), still, eps=EPS)
    path = torch.stack([torch.zeros(3, 32, 32), torch.full((3, 32, 32), 0.01)])
    for kwargs, message in (
        ({"grid": 2}, "grid"),
        ({"eps": 0.0}, "eps"),
        ({"second": "sideways"}, "second"),
        ({"span": -1.0}, "span"),
        ({"loss": "hinge"}, "loss"),
    ):
        with pytest.raises(ValueError, match=message):
            attack_plane(relu_model, x[0], int(y[0]), path, **{"eps": EPS, **kwargs})
    with pytest.raises(ValueError, match="path must be"):
        attack_plane(relu_model, x[0], int(y[0]), path[:1], eps=EPS)
