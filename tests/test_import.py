"""`kwta import`: a researcher's CIFAR-10 checkpoint made a model of the explorer. Real
checkpoints made here from a network trained on real (bundled) CIFAR-10 images, in the
layouts people publish; hostile files refused without running anything."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from kwta.attacks import is_correct
from kwta.cli import main
from kwta.data import CIFAR10Tensors
from kwta.zoo.hub import list_pretrained, load_pretrained
from kwta.zoo.imported import ImportRefused, import_model, read_state_dict

ARCH_KWARGS = {"width": 8, "act": "relu"}


class _Boom:
    """Unpickling this runs code: it would write a file named by the test."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


def _train_briefly(
    net: nn.Module, data: CIFAR10Tensors, *, epochs: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A few SGD passes on the real training sample (net left in eval mode); its images."""
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x, y = data.tensors()
    net.train()
    for _ in range(epochs):
        for s in range(0, len(y), 100):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[s : s + 100]), y[s : s + 100]).backward()
            opt.step()
    net.eval()
    return x, y


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_robustbench_layout_checkpoint_imports_and_loads(
    relu_model: nn.Module, tmp_path: Path, test_sample: CIFAR10Tensors
) -> None:
    ckpt = tmp_path / "model_best.pt"
    # DataParallel's prefix, nested under "state_dict", beside training state
    torch.save(
        {"epoch": 12, "state_dict": {f"module.{k}": v for k, v in _state(relu_model).items()}},
        ckpt,
    )
    out = tmp_path / "zoo"
    card = import_model(
        ckpt, arch="resnet18", arch_kwargs=ARCH_KWARGS, name="mine", out_dir=out, n=200
    )
    assert card["training"]["method"] == "imported"
    assert card["training"]["source"]["file"] == "model_best.pt"
    assert list(list_pretrained(out)) == ["mine"]
    model = load_pretrained("mine", directory=out)  # hash-checked
    x, y = test_sample.tensors(range(200))
    # the card's clean accuracy is recomputed on the images it names
    acc = float(is_correct(model, x, y, batch_size=250).float().mean())
    assert acc == pytest.approx(card["metrics"]["clean_accuracy"], abs=1e-9)
    assert card["metrics"]["clean_n"] == len(y) == 200
    assert 0.0 <= card["metrics"]["robust_accuracy"]["pgd"] <= acc
    assert "first 200 of the bundled 1 000-image" in card["metrics"]["note"]
    with torch.no_grad():  # the same network, to fp16 storage
        assert torch.allclose(model(x[:8]), relu_model.eval()(x[:8]), atol=0.05)


def test_safetensors_and_a_bare_state_dict_import(relu_model: nn.Module, tmp_path: Path) -> None:
    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in _state(relu_model).items()}, str(st))
    pt = tmp_path / "w.pth"
    torch.save(_state(relu_model), pt)
    a, _ = read_state_dict(st)
    b, _ = read_state_dict(pt)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": _Boom(str(target))}, evil)
    legacy = tmp_path / "evil_legacy.pkl"
    legacy.write_bytes(pickle.dumps({"x": _Boom(str(target))}, protocol=2))
    renamed = tmp_path / "evil.safetensors"  # a pickle behind a safetensors name
    renamed.write_bytes(evil.read_bytes())
    for f in (evil, legacy, renamed):
        with pytest.raises(ImportRefused, match="not readable as tensors only"):
            read_state_dict(f)
    assert not target.exists()  # nothing ran


def test_bad_files_and_mismatches_get_a_clear_message(
    relu_model: nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = tmp_path / "notes.safetensors"
    junk.write_text("not weights at all")
    with pytest.raises(ImportRefused, match="neither safetensors nor a PyTorch"):
        read_state_dict(junk)
    broken_zip = tmp_path / "cut.pt"
    torch.save(_state(relu_model), broken_zip)
    broken_zip.write_bytes(broken_zip.read_bytes()[:200])
    with pytest.raises(ImportRefused, match="not readable as tensors only"):
        read_state_dict(broken_zip)
    state = _state(relu_model)
    state["extra.weight"] = torch.zeros(3)
    del state["linear.weight"]
    ckpt = tmp_path / "m.pt"
    torch.save(state, ckpt)
    with pytest.raises(
        ImportRefused, match=r"missing \['linear.weight'\]; unexpected \['extra.weight'\]"
    ):
        import_model(ckpt, arch="resnet18", arch_kwargs=ARCH_KWARGS, name="m", out_dir=tmp_path)
    torch.save(_state(relu_model), ckpt)
    with pytest.raises(ImportRefused, match=r"conv1\.weight is .* the architecture wants"):
        import_model(ckpt, arch="resnet18", arch_kwargs={"width": 16}, name="m", out_dir=tmp_path)
    for name in ("../up", "a/b", "", "x" * 100):
        with pytest.raises(ImportRefused, match="file stem"):
            import_model(
                ckpt, arch="resnet18", arch_kwargs=ARCH_KWARGS, name=name, out_dir=tmp_path
            )
    with monkeypatch.context() as m:  # the size limit is checked before a byte is read
        m.setattr("kwta.zoo.imported.MAX_IMPORT_BYTES", 1000)
        with pytest.raises(ImportRefused, match="over the 0 MiB limit"):
            read_state_dict(ckpt)
    with pytest.raises(ImportRefused, match="unknown architecture"):
        import_model(ckpt, arch="os.system", name="m", out_dir=tmp_path)
    assert not list(tmp_path.glob("*.json"))  # nothing was written


def test_cli_import_and_its_normalisation(
    relu_model: nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model_state_dict": _state(relu_model)}, ckpt)
    out = tmp_path / "zoo"
    args = ["import", str(ckpt), "--arch", "resnet18", "--arch-kwargs", json.dumps(ARCH_KWARGS)]
    norm = ["--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"]
    rc = main([*args, *norm, "--name", "mine", "--out", str(out), "--n", "100"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mine: clean" in printed and "KWTA_PRETRAINED" in printed
    card = json.loads((out / "mine.json").read_text())
    assert card["arch_kwargs"]["mean"] == [0.5, 0.5, 0.5]
    model = load_pretrained("mine", directory=out)
    assert torch.allclose(model.normalize.mean.flatten(), torch.full((3,), 0.5))
    assert (
        main(["import", str(ckpt), "--arch", "resnet18", "--name", "bad/name", "--out", str(out)])
        == 1
    )


@pytest.mark.parametrize(
    "page",
    [
        "attack",  # the fast tier: one page; the rest in the slow tier
        *(pytest.param(p, marks=pytest.mark.slow) for p in ("landscape", "attack_path")),
        *(pytest.param(p, marks=pytest.mark.slow) for p in ("patterns", "adaptive")),
    ],
)
def test_an_imported_model_is_on_the_pages(
    page: str, relu_model: nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KWTA_PRETRAINED pointing at the import folder: the page renders with the model picked
    (a model of no tier, with no twin) and the Live attack runs on it."""
    from app_fixtures import APP_MAIN
    from streamlit.testing.v1 import AppTest

    ckpt = tmp_path / "ckpt.pt"
    torch.save({"state_dict": _state(relu_model)}, ckpt)
    out = tmp_path / "zoo"
    import_model(ckpt, arch="resnet18", arch_kwargs=ARCH_KWARGS, name="mine", out_dir=out, n=50)
    monkeypatch.setenv("KWTA_PRETRAINED", str(out))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    at = AppTest.from_file(str(APP_MAIN), default_timeout=120)
    at.run()
    at.query_params = {"atk_steps": "4"} if page == "attack" else {}
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    picked = [str(s.value) for s in at.selectbox] + [v for m in at.multiselect for v in m.value]
    assert "mine" in picked
    if page == "attack":
        at.button(key="atk_run").click().run()
        assert not at.exception, [e.value for e in at.exception]
        verdict = "\n".join(str(e.value) for e in [*at.error, *at.success, *at.warning])
        assert "Attack" in verdict or "misclassified" in verdict


def test_published_architectures_have_the_reference_layout() -> None:
    """PreAct ResNet-18 and WideResNet-28-10/34-10 have the parameter counts of the published
    networks and the reference implementations' state-dict keys."""
    from kwta.models import build_model

    def params(m: nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    with torch.device("meta"):  # shapes only: no memory, no initialisation
        wrn = build_model("wide_resnet", depth=28, widen_factor=10)
        wrn34 = build_model("wide_resnet", depth=34, widen_factor=10)
        kuangliu = build_model("preact_resnet18", final_bn=False)
        wong = build_model("preact_resnet18").state_dict()  # Wong et al. / RobustBench: + "bn"
    assert params(wrn) == 36_479_194  # WRN-28-10 (Zagoruyko & Komodakis; TRADES, RobustBench)
    assert params(wrn34) == 46_160_474
    keys = list(wrn.state_dict())
    assert keys[:2] == ["conv1.weight", "block1.layer.0.bn1.weight"]
    assert "block1.layer.0.convShortcut.weight" in keys
    assert "block1.layer.1.convShortcut.weight" not in keys  # only where the width changes
    assert keys[-7:] == [
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "fc.weight",
        "fc.bias",
    ]
    small = build_model("wide_resnet", depth=10, widen_factor=1, sub_block1=True)
    assert "sub_block1.layer.0.conv1.weight" in small.state_dict()
    assert params(kuangliu) == 11_171_146  # the original PreAct ResNet-18
    assert {"bn.weight", "layer2.0.shortcut.0.weight", "linear.weight"} <= set(wong)
    assert not any(k.startswith("normalize") for k in wong)  # normalisation has no keys
    kwta_net = build_model(
        "wide_resnet", depth=10, widen_factor=1, act="kwta", act_kwargs={"ratio": 0.1}
    )
    x = torch.rand(2, 3, 32, 32)
    assert kwta_net.eval()(x).shape == (2, 10)  # the k-WTA variant exists too


def test_a_robustbench_preact_resnet_checkpoint_imports_with_one_command(
    train_sample: CIFAR10Tensors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PreAct ResNet-18 trained here on real images with [0, 1] inputs (no normalisation,
    as RobustBench's are), saved in RobustBench's layout, imported by one command."""
    from kwta.models import build_model

    torch.manual_seed(0)
    net = build_model("preact_resnet18", width=8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    x, _ = _train_briefly(net, train_sample, epochs=2)
    ckpt = tmp_path / "Wong2020Fast.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, ckpt)
    out = tmp_path / "zoo"
    args = ["import", str(ckpt), "--arch", "preact_resnet18", "--arch-kwargs", '{"width": 8}']
    norm = ["--mean", "0,0,0", "--std", "1,1,1"]
    rc = main([*args, *norm, "--name", "wong-like", "--out", str(out), "--n", "100"])
    assert rc == 0, capsys.readouterr()
    model = load_pretrained("wong-like", directory=out)
    with torch.no_grad():
        assert torch.allclose(model(x[:16]), net(x[:16]), atol=0.05)  # fp16 storage
    card = json.loads((out / "wong-like.json").read_text())
    assert card["arch"] == "preact_resnet18" and card["arch_kwargs"]["std"] == [1.0, 1.0, 1.0]


@pytest.mark.slow  # five pages through AppTest: 16 s
def test_a_timm_model_imports_with_one_command_and_attacks(
    train_sample: CIFAR10Tensors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timm network (``timm:test_resnet``, timm's own keys) trained here on real images,
    saved as safetensors, imported by one command, attacked on the Live attack page."""
    pytest.importorskip("timm")
    from app_fixtures import APP_MAIN
    from streamlit.testing.v1 import AppTest

    from kwta.models import build_model

    torch.manual_seed(0)
    net = build_model("timm:test_resnet", num_classes=10)
    x, _ = _train_briefly(net, train_sample, epochs=1)
    ckpt = tmp_path / "timm.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(ckpt))
    out = tmp_path / "zoo"
    args = ["import", str(ckpt), "--out", str(out)]
    assert main([*args, "--arch", "timm:test_resnet", "--name", "t"]) == 0
    model = load_pretrained("t", directory=out)
    with torch.no_grad():
        assert torch.allclose(model(x[:8]), net(x[:8]), atol=0.05)
    assert main([*args, "--arch", "timm:no_such_net", "--name", "u"]) == 1
    monkeypatch.setenv("KWTA_PRETRAINED", str(out))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    at = AppTest.from_file(str(APP_MAIN), default_timeout=120)
    at.run()
    at.query_params = {"atk_steps": "3"}
    at.switch_page("views/attack.py").run()
    at.button(key="atk_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="atk_a").value == "t"
    for page in ("landscape", "attack_path", "adaptive"):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at.switch_page("views/patterns.py").run()  # torch's own ReLU: no pattern to read, said so
    assert not at.exception and "no pattern to show" in " ".join(str(i.value) for i in at.info)
