"""CIFAR-10 from whichever real source is at hand.

:func:`cifar10` tries, in order:

1. torchvision's canonical ``cifar-10-batches-py`` under ``root`` (downloaded
   there first when ``download=True`` and the machine is online);
2. an image-folder copy (``train/<class>/*.jpg``, ``test/<class>/*.jpg``) or a
   tarball of one, at ``root`` or at ``$KWTA_DATA`` — e.g. the JPEG copy
   ``cifar10-jpeg.tar.gz``;
3. when neither ``root`` nor ``$KWTA_DATA`` names anything, a small sample of
   real CIFAR-10 images bundled with the package (``kwta/sample/``), so the app
   and the tests always have real images.

A source that was named but is missing or corrupt raises :class:`DataSourceError`
listing everything that was tried; it never silently falls back.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "CIFAR10_CLASSES",
    "SAMPLE_PATH",
    "CIFAR10Tensors",
    "DataSourceError",
    "cifar10",
    "cifar10_sample",
]

log = logging.getLogger(__name__)

Split = Literal["train", "test"]

#: CIFAR-10 class names in label order (0-9); also the sorted folder names.
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: Bundled sample: real CIFAR-10 images (JPEG copy) in the same tarball layout.
SAMPLE_PATH = Path(__file__).resolve().parent / "sample" / "cifar10-sample.tar.gz"

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class DataSourceError(RuntimeError):
    """No usable CIFAR-10 source; the message lists every source tried and why it failed."""


@dataclass(frozen=True)
class CIFAR10Tensors(Dataset[tuple[Tensor, int]]):
    """CIFAR-10 held in memory as tensors.

    Attributes:
        images: ``uint8`` tensor ``(N, 3, 32, 32)``. Treat as read-only: loads are
            cached and shared within a process.
        labels: ``int64`` tensor ``(N,)`` with labels 0-9.
        split: ``"train"`` or ``"test"``.
        source: Human-readable provenance (kind and location), for model cards.
    """

    images: Tensor
    labels: Tensor
    split: str
    source: str
    classes: tuple[str, ...] = CIFAR10_CLASSES

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index].float().div(255.0), int(self.labels[index])

    def tensors(
        self,
        indices: Iterable[int] | slice | Tensor | None = None,
        *,
        device: torch.device | str | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Images as ``float32`` in [0, 1] and labels, optionally a subset, on ``device``."""
        if indices is None:
            idx: slice | Tensor = slice(None)
        elif isinstance(indices, (slice, Tensor)):
            idx = indices
        else:
            idx = torch.as_tensor(list(indices), dtype=torch.long)
        x = self.images[idx].to(device).float().div_(255.0)
        return x, self.labels[idx].to(device)

    def balanced_indices(self, n: int, *, seed: int = 0) -> Tensor:
        """``n`` indices spread evenly over the classes (as far as ``n`` allows), seeded."""
        if n >= len(self):
            return torch.arange(len(self))
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=gen)
        per_class = [perm[self.labels[perm] == c] for c in range(len(self.classes))]
        out: list[Tensor] = []
        rank = 0
        while sum(t.numel() for t in out) < n:
            for c in per_class:
                if rank < c.numel():
                    out.append(c[rank : rank + 1])
            rank += 1
        return torch.cat(out)[:n].sort().values


# --------------------------------------------------------------------------- readers


def _decode(data: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise DataSourceError(f"cannot decode image {name}: {err}") from err
    if arr.shape != (32, 32, 3):
        raise DataSourceError(f"{name} is {arr.shape[1]}×{arr.shape[0]}, not a 32×32 CIFAR image")
    return arr


def _class_of(member: str, split: str) -> int | None:
    """Label of an archive/folder member ``[prefix/]split/<class>/<file>``, else ``None``."""
    parts = Path(member).parts
    if len(parts) < 3 or parts[-3] != split or not member.lower().endswith(_IMAGE_SUFFIXES):
        return None
    try:
        return CIFAR10_CLASSES.index(parts[-2])
    except ValueError:
        return None


def _stack(items: list[tuple[str, int, np.ndarray]], split: str, source: str) -> CIFAR10Tensors:
    if not items:
        raise DataSourceError(f"{source}: no images found for split {split!r}")
    items.sort(key=lambda t: (t[1], t[0]))  # class, then file name: a stable order
    images = torch.from_numpy(np.stack([a for _, _, a in items])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([c for _, c, _ in items], dtype=torch.long)
    return CIFAR10Tensors(images=images, labels=labels, split=split, source=source)


def _read_tarball(path: Path, split: str, source_kind: str) -> CIFAR10Tensors:
    items: list[tuple[str, int, np.ndarray]] = []
    try:
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                label = _class_of(m.name, split) if m.isfile() else None
                if label is None:
                    continue
                f = tf.extractfile(m)
                if f is None:
                    continue
                items.append((m.name, label, _decode(f.read(), f"{path}:{m.name}")))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataSourceError(f"{path} is not a readable tarball: {err}") from err
    return _stack(items, split, f"{source_kind}:{path}")


def _read_folder(path: Path, split: str) -> CIFAR10Tensors:
    items: list[tuple[str, int, np.ndarray]] = []
    base = path / split
    for label, cls in enumerate(CIFAR10_CLASSES):
        d = base / cls
        if not d.is_dir():
            raise DataSourceError(f"{path}: missing class folder {split}/{cls}")
        for f in sorted(d.iterdir()):
            if f.suffix.lower() in _IMAGE_SUFFIXES:
                items.append((f.name, label, _decode(f.read_bytes(), str(f))))
    return _stack(items, split, f"image-folder:{path}")


def _read_torchvision(root: Path, split: str, download: bool) -> CIFAR10Tensors:
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(str(root), train=(split == "train"), download=download)
    except Exception as err:  # torchvision raises RuntimeError/URLError/OSError variants
        raise DataSourceError(f"torchvision CIFAR10 at {root}: {err}") from err
    images = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor(ds.targets, dtype=torch.long)
    return CIFAR10Tensors(images=images, labels=labels, split=split, source=f"torchvision:{root}")


def _candidates(path: Path) -> Iterator[tuple[str, Path]]:
    """What an explicitly named ``path`` could hold, most canonical first."""
    if path.is_dir():
        if (path / "cifar-10-batches-py").is_dir() or path.name == "cifar-10-batches-py":
            yield "torchvision", path.parent if path.name == "cifar-10-batches-py" else path
        if (path / "train").is_dir() or (path / "test").is_dir():
            yield "folder", path
        for name in ("cifar10-jpeg.tar.gz", "cifar10.tar.gz"):
            if (path / name).is_file():
                yield "tarball", path / name
    elif path.is_file() and path.name.lower().endswith(_TAR_SUFFIXES):
        yield "tarball", path


_cache: dict[tuple[str, str, float], CIFAR10Tensors] = {}
_cache_lock = threading.Lock()


def _load(kind: str, path: Path, split: str, download: bool = False) -> CIFAR10Tensors:
    key = (f"{kind}:{path}", split, path.stat().st_mtime if path.exists() else 0.0)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    if kind == "torchvision":
        ds = _read_torchvision(path, split, download)
    elif kind == "folder":
        ds = _read_folder(path, split)
    elif kind == "sample":
        ds = _read_tarball(path, split, "bundled-sample")
    else:
        ds = _read_tarball(path, split, "jpeg-tarball")
    with _cache_lock:
        _cache[key] = ds
    return ds


def cifar10_sample(split: Split = "test") -> CIFAR10Tensors:
    """The bundled sample of real CIFAR-10 images (1 000 test, 500 train; JPEG copy)."""
    _check_split(split)
    if not SAMPLE_PATH.is_file():
        raise DataSourceError(f"the bundled sample {SAMPLE_PATH} is missing (broken install?)")
    return _load("sample", SAMPLE_PATH, split)


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def cifar10(
    split: Split = "test",
    root: str | os.PathLike[str] | None = None,
    *,
    download: bool = False,
) -> CIFAR10Tensors:
    """Load a CIFAR-10 split from the best available real source.

    Args:
        split: ``"train"`` (50 000 images) or ``"test"`` (10 000).
        root: A folder holding ``cifar-10-batches-py``, an image-folder copy,
            or a tarball of one (or the tarball itself); when given, it is the
            only source tried. ``None``: use ``$KWTA_DATA`` if set, else the
            bundled sample.
        download: Let torchvision download the canonical batches into ``root``
            first (needs a network; failure falls through to the other sources).

    Returns:
        The split as in-memory tensors; ``.source`` says where it came from.

    Raises:
        DataSourceError: ``root``/``$KWTA_DATA`` named a source that is missing
            or unreadable. The message lists every attempt.
        ValueError: Unknown split.
    """
    _check_split(split)
    # An explicit root is the only source tried: a typo must not train on $KWTA_DATA instead.
    named: list[tuple[str, Path]] = []
    env = os.environ.get("KWTA_DATA")
    if root is not None:
        named.append(("root", Path(root).expanduser()))
    elif env:
        named.append(("$KWTA_DATA", Path(env).expanduser()))
    if not named:
        log.info("no CIFAR-10 source named (root, $KWTA_DATA): using the bundled sample")
        return cifar10_sample(split)

    tried: list[str] = []
    for label, path in named:
        if download and label == "root":
            try:
                return _load("torchvision", path, split, download=True)
            except DataSourceError as err:
                tried.append(f"download into {path}: {err}")
        found = False
        for kind, candidate in _candidates(path):
            found = True
            try:
                return _load(kind, candidate, split)
            except DataSourceError as err:
                tried.append(f"{kind} at {candidate}: {err}")
        if not found:
            what = "does not exist" if not path.exists() else "holds no CIFAR-10 copy"
            tried.append(f"{label}={path}: {what}")
    raise DataSourceError("no usable CIFAR-10 source. Tried:\n  " + "\n  ".join(tried))


def portable_source(source: str) -> str:
    """``kind:file-name`` of a data source: no machine's folder ever goes into a card."""
    kind, _, where = source.partition(":")
    if not where:
        return source
    return f"{kind}:{Path(where.rstrip('/')).name}"


def data_provenance(source: str) -> dict[str, Any]:
    """Card entry for a data source (:attr:`CIFAR10Tensors.source`), saying plainly whether
    it is the JPEG copy. The location is reduced to its last name (:func:`portable_source`)."""
    kind = source.split(":", 1)[0]
    source = portable_source(source)
    if kind in ("jpeg-tarball", "bundled-sample"):
        note = (
            "JPEG copy of CIFAR-10 (quality 75): pixels differ slightly from the canonical "
            "binary batches, so accuracies are not exactly comparable with the paper's"
        )
        if kind == "bundled-sample":
            note = "small bundled sample of real CIFAR-10 images; " + note
        return {"source": source, "jpeg_copy": True, "note": note}
    if kind == "image-folder":
        return {
            "source": source,
            "jpeg_copy": None,
            "note": "image-folder copy of CIFAR-10 (JPEG-compressed if its files are .jpg)",
        }
    return {"source": source, "jpeg_copy": False, "note": "canonical CIFAR-10 binary batches"}
