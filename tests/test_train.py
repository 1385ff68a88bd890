"""Training (Sec. 2.2, App. D.1): methods, schedules, checkpoints, outputs — on real images."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import kwta.training.epoch as kepoch
import kwta.training.loop as kloop
from kwta import models
from kwta.data import CIFAR10Tensors, data_provenance
from kwta.nn.activations import KWTA, get_ratio
from kwta.training.checkpoints import flatten_optimizer_state, unflatten_optimizer_state
from kwta.training.config import TrainConfig
from kwta.training.epoch import EpochRecord, augment
from kwta.training.loop import train
from kwta.training.schedules import epoch_plan, ratio_schedule
from kwta.zoo.hub import load_from_card, sha256_of

#: A tiny network on the CPU (bit-exact resumption), no held-out evaluation unless asked.
TINY = {"width": 8, "batch_size": 32, "eval_n": 0, "progress": False, "device": "cpu"}


class _Stop(Exception):
    """Raised from a callback to simulate an interrupted run."""


# --------------------------------------------------------------------------- schedules


def test_ratio_schedule_paper_recipe() -> None:
    """App. D.1: γ = 0.2, then −0.005 every 2 epochs until 0.1 (20 steps, 40 epochs)."""
    seq = ratio_schedule(0.1, 0.2, delta=0.005, epochs_per_step=2, main_epochs=3)
    assert seq[:3] == [0.2, 0.2, 0.2]
    steps = [round(0.2 - 0.005 * i, 10) for i in range(1, 21)]
    assert seq[3:] == [r for r in steps for _ in range(2)]
    assert len(seq) == 3 + 40
    assert seq[-1] == 0.1  # exactly, no float drift


def test_ratio_schedule_edges() -> None:
    assert ratio_schedule(0.1, None, main_epochs=4) == [0.1] * 4
    assert ratio_schedule(0.1, 0.1, main_epochs=2) == [0.1, 0.1]  # γ0 = γ1: no fine-tuning
    # δ does not divide γ0 − γ1: the last step is clipped to γ1.
    assert ratio_schedule(0.1, 0.112, delta=0.005, epochs_per_step=1) == [0.107, 0.102, 0.1]
    with pytest.raises(ValueError, match="below the target"):
        ratio_schedule(0.2, 0.1)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ratio_schedule(0.0, 0.2)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        ratio_schedule(0.1, 1.5)


def test_epoch_plan_follows_app_d1() -> None:
    plan = epoch_plan(TrainConfig())
    assert len(plan) == 80
    assert [p.lr for p in plan] == [0.1] * 50 + [0.01] * 30
    assert all(p.ratio is None for p in plan)  # ReLU: no ratio

    # The paper's incremental recipe: 50 epochs at γ=0.2 (LR 0.1), then 40 fine-tuning epochs.
    cfg = TrainConfig(act="kwta", ratio=0.1, incremental_from=0.2, epochs=50, lr_drop_epoch=50)
    plan = epoch_plan(cfg)
    assert len(plan) == 90
    assert [p.phase for p in plan] == ["main"] * 50 + ["fine-tune"] * 40
    assert {p.ratio for p in plan[:50]} == {0.2} and plan[-1].ratio == 0.1
    assert {p.lr for p in plan[:50]} == {0.1} and {p.lr for p in plan[50:]} == {0.01}

    # Other epoch counts scale the LR drop proportionally (50/80).
    assert sum(p.lr == 0.1 for p in epoch_plan(TrainConfig(epochs=8))) == 5
    # Free AT: epochs divided by m (rounded up), drop after round(50/8) = 6 passes.
    plan = epoch_plan(TrainConfig(method="free", epochs=80, free_replays=8))
    assert len(plan) == 10
    assert sum(p.lr == 0.1 for p in plan) == 6
    assert len(epoch_plan(TrainConfig(method="free", epochs=9, free_replays=8))) == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ratio": 0.0}, r"\(0, 1\]"),
        ({"ratio": 1.5}, r"\(0, 1\]"),
        ({"ratio": float("nan")}, r"\(0, 1\]"),
        ({"incremental_from": 0.2}, "act='kwta'"),
        ({"act": "kwta", "ratio": 0.2, "incremental_from": 0.1}, "must be >="),
        ({"method": "sgd"}, "unknown training method"),
        ({"epochs": 0}, "epochs"),
        ({"name": "../escape"}, "model name"),
        ({"arch": "mlp"}, "not a CIFAR-10 model"),
        ({"amp": "fp8"}, "amp"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs).validate()


# --------------------------------------------------------------------------- pieces


def test_augment_is_a_padded_crop_and_flip(train_sample: CIFAR10Tensors) -> None:
    x = train_sample.images[:12]
    out = augment(x, torch.Generator().manual_seed(3))
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):
        candidates = (
            crop.flip(2) if flip else crop
            for dy, dx, flip in itertools.product(range(9), range(9), (False, True))
            for crop in [padded[i, :, dy : dy + 32, dx : dx + 32]]
        )
        assert any(torch.equal(out[i], c) for c in candidates), f"image {i} is not a crop/flip"
    again = augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)  # seeded
    assert not torch.equal(out, augment(x, torch.Generator().manual_seed(4)))


def test_optimizer_state_round_trip() -> None:
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    tensors, meta = flatten_optimizer_state(opt)
    assert tensors and all(isinstance(v, torch.Tensor) for v in tensors.values())
    json.dumps(meta)  # everything else is JSON
    opt2 = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    opt2.load_state_dict(unflatten_optimizer_state(tensors, meta))
    for p in model.parameters():
        assert torch.equal(opt.state[p]["momentum_buffer"], opt2.state[p]["momentum_buffer"])
    assert opt2.param_groups[0]["lr"] == 0.1


def test_training_pgd_attacks_within_the_ball(test_sample: CIFAR10Tensors) -> None:
    """The PGD used for adversarial training raises the loss and stays in the ε-ball."""
    torch.manual_seed(0)
    model = models.resnet18(width=8).eval()
    x, y = test_sample.tensors(test_sample.balanced_indices(32))
    x_adv = kepoch._pgd(
        model,
        x,
        y,
        eps=0.031,
        alpha=0.007,
        steps=8,
        generator=torch.Generator().manual_seed(0),
        amp_ctx=contextlib.nullcontext,
    )
    assert float((x_adv - x).abs().max()) <= 0.031 + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)


def test_data_provenance_says_when_it_is_the_jpeg_copy() -> None:
    assert data_provenance("jpeg-tarball:/d/cifar10-jpeg.tar.gz")["jpeg_copy"] is True
    assert "JPEG" in data_provenance("bundled-sample:/x.tar.gz")["note"]
    assert data_provenance("torchvision:/d")["jpeg_copy"] is False


# --------------------------------------------------------------------------- runs


def test_natural_training_lowers_the_loss(
    train_sample: CIFAR10Tensors, test_sample: CIFAR10Tensors
) -> None:
    cfg = TrainConfig(
        **(TINY | {"batch_size": 50, "eval_n": 200}),
        act="relu",
        epochs=3,
        lr=0.05,
        subset=300,
        seed=0,
    )
    model, card = train(cfg, train_data=train_sample, test_data=test_sample)
    hist = card["training"]["history"]
    assert len(hist) == 3 and all(h["n"] == 300 for h in hist)
    assert hist[-1]["loss"] < hist[0]["loss"] - 0.05
    assert not model.training
    m = card["metrics"]
    assert 0.0 <= m["clean_accuracy"] <= 1.0 and m["clean_n"] == 200
    assert card["training"]["data"]["jpeg_copy"] is True
    assert card["training"]["data"]["train_images"] == 300
    assert card["training"]["schedule"]["lr"] == [
        {"from_epoch": 0, "lr": 0.05},
        {"from_epoch": 2, "lr": 0.005},  # 3·50/80 = 1.875 → 2
    ]


def test_incremental_fine_tuning(
    train_sample: CIFAR10Tensors, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    """Sec. 2.2: train at γ0, lower γ by δ per step; the final k-WTA layers have γ1."""
    applied: list[float] = []
    real = kloop.set_ratio

    def spy(model: torch.nn.Module, ratio: float) -> int:
        applied.append(ratio)
        return real(model, ratio)

    monkeypatch.setattr(kloop, "set_ratio", spy)
    records: list[EpochRecord] = []
    cfg = TrainConfig(
        **TINY,
        act="kwta",
        ratio=0.19,
        incremental_from=0.2,
        incremental_delta=0.005,
        incremental_epochs=1,
        epochs=1,
        subset=64,
        out_dir=str(tmp_path),
        name="inc",
    )
    model, card = train(cfg, train_data=train_sample, callback=records.append)
    assert applied == [0.2, 0.195, 0.19]
    assert [r.ratio for r in records] == [0.2, 0.195, 0.19]
    assert [r.phase for r in records] == ["main", "fine-tune", "fine-tune"]
    kwta_layers = [m for m in model.modules() if isinstance(m, KWTA)]
    assert kwta_layers and all(m.ratio == 0.19 for m in kwta_layers)
    assert card["arch_kwargs"]["act_kwargs"] == {"ratio": 0.19}
    assert card["training"]["schedule"]["ratio"] == [
        {"from_epoch": 0, "ratio": 0.2},
        {"from_epoch": 1, "ratio": 0.195},
        {"from_epoch": 2, "ratio": 0.19},
    ]
    assert get_ratio(load_from_card(tmp_path / "inc.json")) == 0.19
    # Resuming the finished run trains nothing more and still ends at γ1.
    again, card2 = train(cfg, train_data=train_sample, resume=True)
    assert get_ratio(again) == 0.19 and card2["sha256"] == card["sha256"]


def test_every_method_has_a_step_function() -> None:
    from kwta.training.config import METHODS
    from kwta.training.epoch import METHOD_STEPS

    assert set(METHOD_STEPS) == set(METHODS)


@pytest.mark.parametrize("method", ["pgd", "trades", "free", "fgsm"])
def test_adversarial_methods_run(method: str, train_sample: CIFAR10Tensors) -> None:
    # Free AT: epochs=4 with m=4 is one pass with 4 replays of every minibatch.
    extra = {"epochs": 4, "free_replays": 4} if method == "free" else {"epochs": 1}
    cfg = TrainConfig(**TINY, act="kwta", ratio=0.2, method=method, subset=64, **extra)
    _model, card = train(cfg, train_data=train_sample)
    hist = card["training"]["history"]
    assert len(hist) == 1
    assert math.isfinite(hist[0]["loss"]) and hist[0]["loss"] > 0
    assert hist[0]["n"] == (64 * 4 if method == "free" else 64)
    assert card["training"]["method"] == method
    hp = card["training"]["hyperparameters"]
    assert hp["eps"] == 0.031
    if method == "pgd":
        assert hp["pgd_steps"] == 8  # App. D.1
    if method == "trades":
        assert hp["trades_beta"] == 6.0  # 1/λ = 6
    if method == "free":
        assert card["training"]["epochs"]["effective_epochs"] == 4


@pytest.mark.parametrize("method", ["natural", "free"])
def test_resume_gives_the_same_weights(method: str, train_sample: CIFAR10Tensors, tmp_path) -> None:
    """An interrupted and resumed run ends exactly where an uninterrupted one does."""
    common = TINY | {
        "act": "kwta",
        "ratio": 0.2,
        "method": method,
        "subset": 64 if method == "natural" else 32,
        "epochs": 3 if method == "natural" else 6,  # natural: LR drop after 2; free: 3 passes
        "free_replays": 2,
        "weights_dtype": "float32",
        "name": "run",
    }
    model_a, card_a = train(
        TrainConfig(**common, out_dir=str(tmp_path / "a")), train_data=train_sample
    )

    def stop_after_first(record: EpochRecord) -> None:
        if record.epoch == 0:
            raise _Stop

    cfg_b = TrainConfig(**common, out_dir=str(tmp_path / "b"))
    with pytest.raises(_Stop):
        train(cfg_b, train_data=train_sample, callback=stop_after_first)
    ckpt = json.loads((tmp_path / "b" / "run.ckpt" / "checkpoint.json").read_text())
    assert ckpt["epoch"] == 1
    model_b, card_b = train(cfg_b, train_data=train_sample, resume=True)

    sd_a, sd_b = model_a.state_dict(), model_b.state_dict()
    assert sd_a.keys() == sd_b.keys()
    assert all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert [h["loss"] for h in card_a["training"]["history"]] == [
        h["loss"] for h in card_b["training"]["history"]
    ]
    assert card_a["sha256"] == card_b["sha256"]
    assert card_b["training"]["resumed"] is True

    # A checkpoint is only resumed with the configuration that made it.
    changed = TrainConfig(**(common | {"lr": 0.05}), out_dir=str(tmp_path / "b"))
    with pytest.raises(ValueError, match="lr"):
        train(changed, train_data=train_sample, resume=True)


def test_saved_weights_and_card_load_back(
    train_sample: CIFAR10Tensors, test_sample: CIFAR10Tensors, tmp_path
) -> None:
    cfg = TrainConfig(
        **(TINY | {"eval_n": 50}),
        act="kwta",
        ratio=0.2,
        epochs=1,
        subset=64,
        out_dir=str(tmp_path),
        name="tiny",
    )
    model, card = train(cfg, train_data=train_sample, test_data=test_sample)
    weights, card_path = tmp_path / "tiny.safetensors", tmp_path / "tiny.json"
    assert weights.is_file() and card_path.is_file()
    assert json.loads(card_path.read_text()) == card
    assert card["sha256"] == sha256_of(weights) and card["dtype"] == "float16"
    for key in ("name", "arch", "arch_kwargs", "training", "metrics", "paper"):
        assert key in card
    tr = card["training"]
    for key in ("method", "hyperparameters", "epochs", "schedule", "device_name", "wall_time_s"):
        assert key in tr
    # the card names the data by kind and file name, never by this machine's folder
    assert tr["data"]["source"] == "bundled-sample:cifar10-sample.tar.gz"
    assert str(Path(train_sample.source.split(":", 1)[1]).parent) not in json.dumps(card)
    assert tr["data"]["train_images"] == 64
    assert {"train_loss", "train_accuracy", "clean_accuracy"} <= card["metrics"].keys()
    # Checkpoints are safetensors + JSON; nothing pickled anywhere.
    assert sorted(p.name for p in (tmp_path / "tiny.ckpt").iterdir()) == [
        "checkpoint.json",
        "checkpoint.safetensors",
    ]
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".pt", ".pth", ".pkl", ".bin")]

    loaded = load_from_card(card_path)
    x, _ = test_sample.tensors(slice(0, 64))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))  # the returned model *is* what was saved
