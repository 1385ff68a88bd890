"""CIFAR-10 sources and their fallbacks."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kwta.data import CIFAR10_CLASSES, DataSourceError, cifar10, cifar10_sample


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KWTA_DATA", raising=False)


def test_bundled_sample_is_real_and_balanced() -> None:
    test = cifar10_sample("test")
    train = cifar10_sample("train")
    assert len(test) == 1000 and len(train) == 500
    assert test.images.dtype == torch.uint8 and test.images.shape[1:] == (3, 32, 32)
    assert test.labels.bincount().tolist() == [100] * 10
    assert train.labels.bincount().tolist() == [50] * 10
    # real photographs: per-channel means near CIFAR-10's, plenty of texture
    mean = test.images.float().div(255).mean((0, 2, 3))
    assert torch.allclose(mean, torch.tensor([0.49, 0.48, 0.45]), atol=0.04)
    assert test.images.float().std() > 40
    x, y = test.tensors(range(5))
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1 and y.shape == (5,)
    assert test.source.startswith("bundled-sample")


def test_no_source_named_uses_sample() -> None:
    assert cifar10("test").source.startswith("bundled-sample")


def test_balanced_indices() -> None:
    test = cifar10_sample("test")
    idx = test.balanced_indices(50, seed=1)
    assert len(idx) == 50 and len(set(idx.tolist())) == 50
    assert test.labels[idx].bincount().tolist() == [5] * 10
    assert torch.equal(idx, test.balanced_indices(50, seed=1))
    assert not torch.equal(idx, test.balanced_indices(50, seed=2))


def _write_folder(root: Path, per_class: int = 2, fmt: str = "PNG") -> dict[str, np.ndarray]:
    sample = cifar10_sample("test")
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        for c, cls in enumerate(CIFAR10_CLASSES):
            d = root / split / cls
            d.mkdir(parents=True)
            idx = (sample.labels == c).nonzero().squeeze(1)[:per_class]
            for j, i in enumerate(idx.tolist()):
                arr = sample.images[i].permute(1, 2, 0).numpy()
                Image.fromarray(arr).save(d / f"{j:04d}.png", format=fmt)
                arrays[f"{split}/{cls}/{j:04d}"] = arr
    return arrays


def test_image_folder_source(tmp_path: Path) -> None:
    arrays = _write_folder(tmp_path)
    ds = cifar10("test", tmp_path)
    assert len(ds) == 20 and ds.source.startswith("image-folder")
    assert ds.labels.tolist() == sorted([c for c in range(10)] * 2)
    # lossless PNGs round-trip exactly
    assert np.array_equal(ds.images[0].permute(1, 2, 0).numpy(), arrays["test/airplane/0000"])


def test_tarball_source_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "f"
    _write_folder(folder, per_class=1)
    tarball = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(folder / "train", arcname="train")
        tf.add(folder / "test", arcname="test")
    ds = cifar10("train", tarball)
    assert len(ds) == 10 and ds.source.startswith("jpeg-tarball")
    # a folder holding the tarball works too, and so does $KWTA_DATA
    assert len(cifar10("train", tmp_path)) == 10
    monkeypatch.setenv("KWTA_DATA", str(tarball))
    assert cifar10("test").source == f"jpeg-tarball:{tarball}"


def test_torchvision_batches_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A canonical ``cifar-10-batches-py`` folder is read through torchvision."""
    sample = cifar10_sample("test")
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    data = sample.images[:20].reshape(20, -1).numpy()  # CHW rows, as in the real batches
    batch = {"data": data, "labels": sample.labels[:20].tolist()}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES)}, f)
    # torchvision checks the md5s of the real files; ours are stand-ins
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    ds = cifar10("test", tmp_path)
    assert ds.source.startswith("torchvision")
    assert torch.equal(ds.images, sample.images[:20])


def test_missing_source_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataSourceError, match="does not exist"):
        cifar10("test", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="holds no CIFAR-10 copy"):
        cifar10("test", tmp_path / "empty")
    monkeypatch.setenv("KWTA_DATA", str(tmp_path / "gone.tar.gz"))
    with pytest.raises(DataSourceError, match=r"\$KWTA_DATA"):
        cifar10("test")
    with pytest.raises(ValueError, match="split"):
        cifar10("val")  # type: ignore[arg-type]


def test_bad_root_never_falls_back_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_folder(tmp_path / "good", per_class=1)
    monkeypatch.setenv("KWTA_DATA", str(tmp_path / "good"))
    assert len(cifar10("test")) == 10  # the env source works…
    with pytest.raises(DataSourceError, match=r"root=.*typo: does not exist"):
        cifar10("test", tmp_path / "typo")  # …but a named root that fails is an error


def test_corrupt_sources(tmp_path: Path) -> None:
    bad = tmp_path / "cifar10-jpeg.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)
    with pytest.raises(DataSourceError, match="not a readable tarball"):
        cifar10("test", bad)
    # a tarball whose "image" is text
    tb = tmp_path / "x.tar.gz"
    with tarfile.open(tb, "w:gz") as tf:
        payload = b"hello, I am not a JPEG"
        info = tarfile.TarInfo("test/cat/0001.jpg")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    with pytest.raises(DataSourceError, match="cannot decode"):
        cifar10("test", tb)
    # a folder with an image of the wrong size
    folder = tmp_path / "wrong"
    _write_folder(folder, per_class=1)
    Image.new("RGB", (64, 64)).save(folder / "test" / "cat" / "9999.png")
    with pytest.raises(DataSourceError, match="not a 32×32"):
        cifar10("test", folder)


@pytest.mark.slow
def test_full_tarball(full_tarball: Path) -> None:
    test = cifar10("test", full_tarball)
    assert len(test) == 10000 and test.labels.bincount().tolist() == [1000] * 10
    assert test.source.startswith("jpeg-tarball")
    # the bundled sample is byte-for-byte a subset of the full copy
    sample = cifar10_sample("test")
    first_cat = test.images[test.labels == 3][0]
    assert any(torch.equal(first_cat, im) for im in sample.images[sample.labels == 3])
