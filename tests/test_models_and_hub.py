"""The paper's ResNet-18, the toy MLP, and weights on disk (safetensors + sha256 cards)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import kwta
from kwta import models
from kwta.zoo.hub import WeightsError, list_pretrained, load_from_card, load_pretrained, save_model


def test_resnet18_topology() -> None:
    m = models.resnet18()
    assert sum(p.numel() for p in m.parameters()) == 11_173_962  # the paper's CIFAR ResNet-18
    assert m.conv1.kernel_size == (3, 3) and m.conv1.stride == (1, 1)
    assert not any(isinstance(x, nn.MaxPool2d) for x in m.modules())
    assert [len(s) for s in (m.layer1, m.layer2, m.layer3, m.layer4)] == [2, 2, 2, 2]
    small = models.resnet18(width=16, act="kwta", act_kwargs={"ratio": 0.1})
    assert small.layer4[1].conv2.out_channels == 128
    assert sum(isinstance(x, kwta.KWTA) for x in small.modules()) == 17
    assert not any(isinstance(x, nn.ReLU) for x in small.modules())
    assert small(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError):
        models.resnet18(act="nope")
    with pytest.raises(ValueError, match="unknown architecture"):
        models.build_model("vgg19")


def test_model_normalises_inside() -> None:
    m = models.resnet18(width=4).eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(models.common.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.common.CIFAR10_STD).view(1, 3, 1, 1)
    m2 = models.resnet18(width=4).eval()
    m2.load_state_dict(m.state_dict())
    m2.normalize = nn.Identity()  # type: ignore[assignment]
    with torch.no_grad():
        assert torch.allclose(m(x), m2((x - mean) / std), atol=1e-5)
    assert "normalize.mean" not in m.state_dict()  # constants, not weights


def test_mlp() -> None:
    m = models.MLP(width=32, depth=3, act="kwta", act_kwargs={"ratio": 0.25})
    assert m(torch.linspace(-1, 1, 7).unsqueeze(1)).shape == (7, 1)
    assert sum(isinstance(x, kwta.KWTA) for x in m.modules()) == 3


def _card() -> dict:
    return {
        "name": "tiny",
        "arch": "resnet18",
        "arch_kwargs": {"width": 4, "act": "kwta", "act_kwargs": {"ratio": 0.2}},
    }


def test_save_and_load_roundtrip(tmp_path: Path, kwta_model: nn.Module) -> None:
    card = {
        "name": "k",
        "arch": "resnet18",
        "arch_kwargs": {"width": 8, "act": "kwta", "act_kwargs": {"ratio": 0.2}},
    }
    written = save_model(kwta_model, tmp_path / "k.safetensors", card, dtype=None)
    assert json.loads((tmp_path / "k.json").read_text())["sha256"] == written["sha256"]
    assert (tmp_path / "k.safetensors").read_bytes()[:1] != b"\x80"  # not a pickle
    loaded = load_from_card(tmp_path / "k.json")
    assert not loaded.training
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), kwta_model(x))
    # fp16 storage: the loaded model runs in fp32 and stays close
    save_model(kwta_model, tmp_path / "h.safetensors", card | {"name": "h"})
    half = load_pretrained("h", directory=tmp_path)
    assert next(half.parameters()).dtype == torch.float32
    assert set(list_pretrained(tmp_path)) == {"k", "h"}


def test_tampered_truncated_missing_weights_refused(tmp_path: Path) -> None:
    model = models.build_model("resnet18", **_card()["arch_kwargs"])
    save_model(model, tmp_path / "tiny.safetensors", _card())
    weights = tmp_path / "tiny.safetensors"
    good = weights.read_bytes()
    # one flipped byte in the tensor data
    bad = bytearray(good)
    bad[-10] ^= 0xFF
    weights.write_bytes(bytes(bad))
    with pytest.raises(WeightsError, match="does not match its card"):
        load_pretrained("tiny", directory=tmp_path)
    weights.write_bytes(good[: len(good) // 2])
    with pytest.raises(WeightsError, match="does not match its card"):
        load_pretrained("tiny", directory=tmp_path)
    weights.unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_pretrained("tiny", directory=tmp_path)
    # a card whose sha256 matches a file that is not safetensors
    weights.write_bytes(b"\x80\x04not safetensors")
    card = json.loads((tmp_path / "tiny.json").read_text())
    card["sha256"] = kwta.zoo.hub.sha256_of(weights)
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        load_pretrained("tiny", directory=tmp_path)


def test_names_never_become_paths(tmp_path: Path) -> None:
    save_model(
        models.build_model("resnet18", **_card()["arch_kwargs"]),
        tmp_path / "tiny.safetensors",
        _card(),
    )
    for name in ("../tiny", "tiny.json", str(tmp_path / "tiny"), "nope"):
        with pytest.raises(KeyError, match="available: \\['tiny'\\]"):
            load_pretrained(name, directory=tmp_path)
    # a card cannot point its weights outside its own folder
    card = json.loads((tmp_path / "tiny.json").read_text())
    card["weights"] = "../../etc/passwd"
    (tmp_path / "tiny.json").write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="missing"):
        load_pretrained("tiny", directory=tmp_path)


def test_save_rejects_other_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="safetensors"):
        save_model(models.resnet18(width=4), tmp_path / "w.pt", _card())


def test_a_cuda_device_turns_tf32_off() -> None:
    # k-WTA's winners change under TF32 rounding (kwta.utils.exact_cuda_math); resolving a
    # CUDA device, as every loader and evaluation does, must make fp32 IEEE fp32
    from kwta.utils import default_device

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        assert default_device("cpu").type == "cpu"
        assert torch.backends.cudnn.allow_tf32  # a CPU run leaves the flags alone
        assert default_device("cuda").type == "cuda"
        assert not torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
