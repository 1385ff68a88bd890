"""Shared fixtures: real CIFAR-10 images and small networks trained on them.

The networks are trained here, once per test session, on the bundled sample of
real CIFAR-10 training images (500 images), so every test runs on a real model
without needing the full data set or a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# OpenMP threads that spin while waiting are ruinous when another process (the
# app server in the browser tests, a second job) shares the two cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch
from torch import nn

# Without a GPU, Triton kernels (the CUDA k-WTA kernel, tests/test_triton.py) run through
# Triton's CPU interpreter; it must be on before anything imports Triton (torchvision does),
# as Triton's own helpers are decorated at that import.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from kwta import models
from kwta.data import CIFAR10Tensors, cifar10_sample

REPO = Path(__file__).resolve().parents[1]
FULL_TARBALL = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def test_sample() -> CIFAR10Tensors:
    """The bundled 1 000 real CIFAR-10 test images."""
    return cifar10_sample("test")


@pytest.fixture(scope="session")
def train_sample() -> CIFAR10Tensors:
    """The bundled 500 real CIFAR-10 training images."""
    return cifar10_sample("train")


def _quick_train(act: str, act_kwargs: dict, train: CIFAR10Tensors, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = models.resnet18(width=8, act=act, act_kwargs=act_kwargs)
    x, y = train.tensors()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(12):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 50):
            idx = perm[i : i + 50]
            xb = x[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def relu_model(train_sample: CIFAR10Tensors) -> nn.Module:
    """A width-8 ReLU ResNet-18 trained briefly on real images (eval mode)."""
    return _quick_train("relu", {}, train_sample)


@pytest.fixture(scope="session")
def kwta_model(train_sample: CIFAR10Tensors) -> nn.Module:
    """A width-8 k-WTA-0.2 ResNet-18 trained briefly on real images (eval mode)."""
    return _quick_train("kwta", {"ratio": 0.2}, train_sample)


@pytest.fixture(scope="session")
def zoo(
    tmp_path_factory: pytest.TempPathFactory, relu_model: nn.Module, kwta_model: nn.Module
) -> Path:
    """Two small real models with cards, as ``pretrained/`` would hold them (the app tests)."""
    from app_fixtures import make_zoo

    return make_zoo(tmp_path_factory.mktemp("zoo"), relu_model, kwta_model)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (skip locally, fail in CI, if missing).

    One for the whole session (``test_browser`` and ``test_load``); session-scoped so
    that pytest sets it up before the session's model fixtures: without a browser
    the tests skip at once instead of training models first.
    """
    from browser_helpers import launch_browser

    with launch_browser() as b:
        yield b


@pytest.fixture(scope="session")
def full_tarball() -> Path:
    """The full JPEG copy of CIFAR-10 beside the checkout; skip (locally) or fail (CI) if absent."""
    path = Path(os.environ.get("KWTA_DATA") or FULL_TARBALL)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the full CIFAR-10 copy at {path}")
        pytest.skip(f"full CIFAR-10 copy not found at {path}")
    return path
