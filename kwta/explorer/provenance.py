"""Where a result comes from: one provenance block for every page's JSON download.

A result made in the explorer carries what it takes to make it again outside the app
(``kwta reproduce``, :mod:`kwta.explorer.reproduce`; a Python script,
:mod:`kwta.explorer.scripts`): the page action (:data:`kwta.explorer.actions.PAGE_ACTIONS`)
with every setting, the seed, the model's name and sha256, the image (a test split and
index with the pixels' sha256, or an upload's pixels), the device and precision, the
library and torch versions, the date. :func:`result_document` builds the block and the
numbers to compare from the very record the page computes with — one function for
every page.

A result file comes from anywhere: :func:`parse_document` checks every field's type and
size before anything is loaded or run (a model is named, never a path).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kwta._version import __version__
from kwta.attacks._steps import steps_ran_in
from kwta.data import CIFAR10Tensors, portable_source
from kwta.explorer.actions import ActionInputs, PageAction, Probe, get_action

__all__ = [
    "DTYPE_NAMES",
    "MAX_RESULT_BYTES",
    "SCHEMA",
    "BatchRef",
    "ImageRef",
    "ModelRef",
    "Provenance",
    "ProvenanceError",
    "balanced_images",
    "dataset_image",
    "device_name",
    "make_provenance",
    "parse_document",
    "probes_from_json",
    "probes_to_json",
    "read_document",
    "result_document",
    "uploaded_image",
]

#: The schema of the provenance block; a file of another schema is refused.
SCHEMA = "kwta-explorer/result/1"
#: The largest result file read (a 101×101 landscape's JSON is well under 1 MB).
MAX_RESULT_BYTES = 32 * 2**20
#: Image shape of every page (CIFAR-10).
IMAGE_SHAPE = (3, 32, 32)
#: Precision every page reports in, and its computations run in unless an attack's
#: ``precision`` setting says otherwise (fp32; see :func:`kwta.utils.exact_cuda_math`).
PRECISION = "float32"

#: What a result's steps ran in, as an action's ``precision`` setting and as the provenance
#: records it. Every number a result reports is float32 whatever its steps ran in.
DTYPE_NAMES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
#: Most elements of one recorded probe (a 101×101 grid has 10 201).
MAX_PROBE_ELEMENTS = 1_000_000

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
_SHA = re.compile(r"[0-9a-f]{64}")
_DATASET = re.compile(r"[a-z-]{1,40}:[A-Za-z0-9._+-]{0,200}")


class ProvenanceError(ValueError):
    """A result file that cannot be read as a result: the message says which field."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _need(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in doc:
        raise ProvenanceError(f"{where}: {key!r} is missing")
    value = doc[key]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ProvenanceError(f"{where}: {key!r} must be a number, got a boolean")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ProvenanceError(f"{where}: {key!r} must be {name}, got {type(value).__name__}")
    return value


def _text(doc: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str]) -> str:
    value = _need(doc, key, str, where)
    if not pattern.fullmatch(value):
        raise ProvenanceError(f"{where}: {key!r} is not a valid value ({value[:40]!r})")
    return str(value)


@dataclass(frozen=True)
class ModelRef:
    """A pretrained model by name and the sha256 of its weights file."""

    name: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        """Plain values (for JSON)."""
        return {"name": self.name, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, doc: Any) -> ModelRef:
        """Checked: a name of letters, digits and ``._+-`` (never a path), a hex sha256.

        Raises:
            ProvenanceError: Wrong type or value.
        """
        if not isinstance(doc, dict):
            raise ProvenanceError("provenance.model must be an object")
        return cls(
            _text(doc, "name", "provenance.model", _NAME),
            _text(doc, "sha256", "provenance.model", _SHA),
        )


@dataclass(frozen=True)
class ImageRef:
    """The image a result was made on.

    A test image is named by split and index in a dataset, its pixels by sha256 (the
    check that the same image is found again); an upload carries its pixels.

    Attributes:
        label: The true class (the user's choice for an upload).
        sha256: Of the ``uint8`` pixels, ``(3, 32, 32)`` in C order.
        split: ``"test"`` for a dataset image, else ``None``.
        index: Index in the split.
        dataset: :func:`kwta.data.portable_source` of the dataset (``"bundled-sample:…"``:
            the bundled sample, anything else: the copy ``$KWTA_DATA`` names).
        pixels: Base64 of the ``uint8`` pixels (uploads only).
    """

    label: int
    sha256: str
    split: str | None = None
    index: int | None = None
    dataset: str | None = None
    pixels: str | None = None

    @property
    def is_upload(self) -> bool:
        """Whether the image travels with the result (an upload)."""
        return self.pixels is not None

    @property
    def bundled(self) -> bool:
        """Whether the image is in the bundled sample (needs no dataset to reproduce)."""
        return bool(self.dataset and self.dataset.startswith("bundled-sample:"))

    def describe(self) -> str:
        """``"test #17 (bundled sample)"`` or ``"an uploaded image"``."""
        if self.is_upload:
            return "an uploaded image"
        where = "bundled sample" if self.bundled else f"dataset {self.dataset}"
        return f"{self.split} #{self.index} ({where})"

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for JSON); absent fields left out."""
        out: dict[str, Any] = {"label": self.label, "sha256": self.sha256}
        if self.is_upload:
            out["pixels"] = self.pixels
        else:
            out |= {"split": self.split, "index": self.index, "dataset": self.dataset}
        return out

    @classmethod
    def from_dict(cls, doc: Any) -> ImageRef:
        """Checked: a label in 0–9, a sha256, then either split/index/dataset or pixels
        that decode to one 32×32 RGB image with that sha256.

        Raises:
            ProvenanceError: Wrong type, size or digest.
        """
        where = "provenance.image"
        if not isinstance(doc, dict):
            raise ProvenanceError(f"{where} must be an object")
        label = _need(doc, "label", int, where)
        if not 0 <= label <= 9:
            raise ProvenanceError(f"{where}: 'label' must be a CIFAR-10 class 0–9, got {label}")
        sha = _text(doc, "sha256", where, _SHA)
        if "pixels" in doc:
            raw = _need(doc, "pixels", str, where)
            if len(raw) > 8 * math.prod(IMAGE_SHAPE):
                raise ProvenanceError(f"{where}: 'pixels' is too long for one 32×32 image")
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as err:
                raise ProvenanceError(f"{where}: 'pixels' is not base64 ({err})") from err
            if len(data) != math.prod(IMAGE_SHAPE):
                raise ProvenanceError(f"{where}: 'pixels' must hold 3×32×32 bytes")
            if _sha256(data) != sha:
                raise ProvenanceError(f"{where}: the pixels do not match their sha256")
            return cls(label, sha, pixels=raw)
        split = _need(doc, "split", str, where)
        if split != "test":
            raise ProvenanceError(f"{where}: 'split' must be 'test', got {split[:20]!r}")
        index = _need(doc, "index", int, where)
        if not 0 <= index < 60_000:
            raise ProvenanceError(f"{where}: 'index' {index} is out of range")
        return cls(label, sha, split, index, _text(doc, "dataset", where, _DATASET))

    def pixels_array(self, data: CIFAR10Tensors | None = None) -> np.ndarray:
        """The ``uint8`` pixels ``(3, 32, 32)``, checked against :attr:`sha256`.

        Args:
            data: The dataset of a test image (not used for an upload).

        Raises:
            ProvenanceError: No dataset for a test image, an index past its end, or
                pixels that are not the recorded image.
        """
        if self.pixels is not None:
            arr = np.frombuffer(base64.b64decode(self.pixels), dtype=np.uint8)
            return arr.reshape(IMAGE_SHAPE).copy()
        if data is None:
            raise ProvenanceError(f"{self.describe()}: no dataset given")
        if self.index is None or not 0 <= self.index < len(data):
            raise ProvenanceError(
                f"{self.describe()}: the dataset at hand ({portable_source(data.source)}) has "
                f"{len(data)} images"
            )
        arr = data.images[self.index].numpy()
        if _sha256(np.ascontiguousarray(arr).tobytes()) != self.sha256:
            raise ProvenanceError(
                f"{self.describe()}: image #{self.index} of {portable_source(data.source)} is "
                "not the recorded image (its sha256 differs): another dataset copy?"
            )
        return arr.copy()


def dataset_image(data: CIFAR10Tensors, index: int) -> ImageRef:
    """The reference of test image ``index`` of ``data``."""
    pixels = np.ascontiguousarray(data.images[index].numpy())
    return ImageRef(
        int(data.labels[index]),
        _sha256(pixels.tobytes()),
        data.split,
        int(index),
        portable_source(data.source),
    )


def uploaded_image(pixels: np.ndarray, label: int) -> ImageRef:
    """The reference of an upload: its ``uint8`` pixels ``(3, 32, 32)`` travel with it."""
    raw = np.ascontiguousarray(pixels, dtype=np.uint8)
    if raw.shape != IMAGE_SHAPE:
        raise ValueError(f"an image must be {IMAGE_SHAPE} uint8, got {raw.shape}")
    data = raw.tobytes()
    return ImageRef(int(label), _sha256(data), pixels=base64.b64encode(data).decode("ascii"))


@dataclass(frozen=True)
class BatchRef:
    """A class-balanced batch of test images (:meth:`CIFAR10Tensors.balanced_indices`).

    Attributes:
        n: Images in the batch.
        seed: Seed of the selection.
        sha256: Of the selected images' ``uint8`` pixels followed by their ``int64`` labels.
        dataset: :func:`kwta.data.portable_source` of the dataset.
        split: ``"test"``.
    """

    n: int
    seed: int
    sha256: str
    dataset: str
    split: str = "test"

    @property
    def bundled(self) -> bool:
        """Whether the batch comes from the bundled sample."""
        return self.dataset.startswith("bundled-sample:")

    def describe(self) -> str:
        """``"32 class-balanced test images (seed 0, bundled sample)"``."""
        where = "bundled sample" if self.bundled else f"dataset {self.dataset}"
        return f"{self.n} class-balanced {self.split} images (seed {self.seed}, {where})"

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for JSON)."""
        return {
            "n": self.n,
            "seed": self.seed,
            "sha256": self.sha256,
            "dataset": self.dataset,
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> BatchRef:
        """Checked: 1–10 000 images, a seed, a sha256, a dataset name, the test split.

        Raises:
            ProvenanceError: Wrong type or value.
        """
        where = "provenance.batch"
        if not isinstance(doc, dict):
            raise ProvenanceError(f"{where} must be an object")
        n = _need(doc, "n", int, where)
        seed = _need(doc, "seed", int, where)
        if not 1 <= n <= 10_000 or not 0 <= seed <= 10**9:
            raise ProvenanceError(f"{where}: 'n' or 'seed' is out of range")
        if _need(doc, "split", str, where) != "test":
            raise ProvenanceError(f"{where}: 'split' must be 'test'")
        return cls(
            n, seed, _text(doc, "sha256", where, _SHA), _text(doc, "dataset", where, _DATASET)
        )

    def tensors(self, data: CIFAR10Tensors) -> tuple[Tensor, Tensor]:
        """The batch ``(xs, ys)`` from ``data``, checked against :attr:`sha256`.

        Raises:
            ProvenanceError: The selection from ``data`` is not the recorded batch.
        """
        ref, xs, ys = balanced_images(data, self.n, self.seed)
        if ref.sha256 != self.sha256:
            raise ProvenanceError(
                f"{self.describe()}: the images {portable_source(data.source)} gives are not "
                "the recorded ones (their sha256 differs): another dataset copy?"
            )
        return xs, ys


def balanced_images(data: CIFAR10Tensors, n: int, seed: int) -> tuple[BatchRef, Tensor, Tensor]:
    """The first ``n`` class-balanced images of ``data`` chosen with ``seed``, their labels,
    and the batch's reference."""
    idx = data.balanced_indices(min(n, len(data)), seed=seed)
    pixels = np.ascontiguousarray(data.images[idx].numpy()).tobytes()
    labels = np.ascontiguousarray(data.labels[idx].numpy().astype(np.int64)).tobytes()
    ref = BatchRef(n, seed, _sha256(pixels + labels), portable_source(data.source), data.split)
    xs, ys = data.tensors(idx)
    return ref, xs, ys


def device_name(device: torch.device | str) -> str:
    """The processor a device is: the GPU's name, or the CPU's model name."""
    device = torch.device(device)
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass(frozen=True)
class Provenance:
    """How a result was made (one schema for every page).

    Attributes:
        action: The page action's key (:data:`kwta.explorer.actions.PAGE_ACTIONS`).
        settings: Every setting of the action, checked (defaults filled in).
        model: The model, ``None`` for the toy fit.
        image: The image, ``None`` for actions on no image.
        batch: The batch of images of an action on many (``on_batch``), else ``None``.
        device: ``"cpu"`` or ``"cuda"``.
        device_name: The processor (:func:`device_name`).
        precision: What the attack's steps ran in (``"float32"``, ``"bfloat16"``,
            ``"float16"``; :data:`DTYPE_NAMES`); everything reported is float32.
        library: The ``kwta`` version.
        torch: The torch version.
        date: When the result was made (UTC, ISO 8601).
    """

    action: str
    settings: Mapping[str, Any]
    model: ModelRef | None
    image: ImageRef | None
    device: str
    device_name: str
    batch: BatchRef | None = None
    precision: str = PRECISION
    library: str = __version__
    torch: str = torch.__version__
    date: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))

    @property
    def page_action(self) -> PageAction:
        """The action itself."""
        return get_action(self.action)

    @property
    def seed(self) -> int | None:
        """The seed of the run's randomness (``None``: the action has none)."""
        seed = self.settings.get("seed")
        return int(seed) if seed is not None else None

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for JSON)."""
        return {
            "schema": SCHEMA,
            "library": self.library,
            "torch": self.torch,
            "action": self.action,
            "page": self.page_action.page,
            "settings": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.settings.items()
            },
            "seed": self.seed,
            "model": self.model.to_dict() if self.model else None,
            "image": self.image.to_dict() if self.image else None,
            "batch": self.batch.to_dict() if self.batch else None,
            "device": self.device,
            "device_name": self.device_name,
            "precision": self.precision,
            "date": self.date,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> Provenance:
        """The block of a result file, every field checked.

        Raises:
            ProvenanceError: Another schema, an unknown action, a setting its action
                refuses, a model or image that is not well formed, a wrong type.
        """
        where = "provenance"
        if not isinstance(doc, dict):
            raise ProvenanceError("the result has no provenance block (made before it existed?)")
        schema = _need(doc, "schema", str, where)
        if schema != SCHEMA:
            raise ProvenanceError(f"{where}: schema {schema[:40]!r} is not {SCHEMA!r}")
        key = _need(doc, "action", str, where)
        try:
            action = get_action(key)
        except KeyError as err:
            raise ProvenanceError(f"{where}: {err.args[0][:200]}") from err
        raw = _need(doc, "settings", dict, where)
        try:
            settings = action.resolve(raw)
        except ValueError as err:
            raise ProvenanceError(f"{where}: {err}") from err
        model = doc.get("model")
        image = doc.get("image")
        if action.per_model and model is None:
            raise ProvenanceError(f"{where}: action {key!r} needs a model")
        if needs_image(action) and image is None:
            raise ProvenanceError(f"{where}: action {key!r} needs an image")
        batch = doc.get("batch")
        if action.on_batch and batch is None:
            raise ProvenanceError(f"{where}: action {key!r} needs a batch of images")
        device = _need(doc, "device", str, where)
        if device not in ("cpu", "cuda"):
            raise ProvenanceError(f"{where}: 'device' must be 'cpu' or 'cuda'")
        precision = _need(doc, "precision", str, where)
        steps = {v: k for k, v in DTYPE_NAMES.items()}.get(precision)
        if steps is None:
            known = sorted(DTYPE_NAMES.values())
            raise ProvenanceError(f"{where}: precision {precision[:20]!r} is not one of {known}")
        if "precision" in settings and "precision" not in raw:  # made before it was a setting
            settings["precision"] = steps
        short = {k: _need(doc, k, str, where)[:200] for k in ("device_name", "library", "torch")}
        return cls(
            action=key,
            settings=settings,
            model=ModelRef.from_dict(model) if action.per_model else None,
            image=ImageRef.from_dict(image) if needs_image(action) else None,
            device=device,
            batch=BatchRef.from_dict(batch) if action.on_batch else None,
            device_name=short["device_name"],
            precision=precision,
            library=short["library"],
            torch=short["torch"],
            date=_need(doc, "date", str, where)[:40],
        )


def needs_image(action: PageAction) -> bool:
    """Whether an action runs on one image (the rest: a batch, or no image at all)."""
    return action.per_model and not action.on_batch


def make_provenance(
    action: str,
    settings: Mapping[str, Any],
    *,
    model: ModelRef | None,
    image: ImageRef | None,
    device: torch.device | str,
    processor: str | None = None,
    batch: BatchRef | None = None,
) -> Provenance:
    """The provenance of a run of ``action`` with ``settings`` (checked, defaults filled in).

    ``processor``: the device's :func:`device_name` when already known.

    Raises:
        KeyError: Unknown action.
        ValueError: A setting the action refuses.
    """
    page_action = get_action(action)
    device = torch.device(device)
    resolved = page_action.resolve(settings)
    precision = PRECISION
    if "precision" in resolved:  # record what ran, never "auto" (whose meaning may change)
        resolved["precision"] = steps_ran_in(str(resolved["precision"]), device)
        precision = DTYPE_NAMES[str(resolved["precision"])]
    return Provenance(
        action=action,
        settings=resolved,
        precision=precision,
        model=model,
        image=image,
        device=device.type,
        device_name=processor or device_name(device),
        batch=batch,
    )


def probes_to_json(probes: Sequence[Probe]) -> list[dict[str, Any]]:
    """Probes' names and values (their rules live in the code, not in a file)."""
    return [
        {"name": p.name, "shape": list(p.value.shape), "values": p.value.flatten().tolist()}
        for p in probes
    ]


def probes_from_json(doc: Any, reference: Sequence[Probe]) -> list[Probe]:
    """A file's recorded probes, each with the rule of the reference's probe of that name.

    Raises:
        ProvenanceError: Not a list of probes, unknown or missing names, values that are
            not numbers or do not fill the shape.
    """
    where = "check"
    if not isinstance(doc, list) or len(doc) > 64:
        raise ProvenanceError(f"{where} must be a list of probes")
    rules = {p.name: p for p in reference}
    out: list[Probe] = []
    for item in doc:
        if not isinstance(item, dict):
            raise ProvenanceError(f"{where}: a probe must be an object")
        name = _need(item, "name", str, where)
        if name not in rules:
            raise ProvenanceError(f"{where}: unknown probe {name[:60]!r}")
        shape = _need(item, "shape", list, where)
        values = _need(item, "values", list, where)
        if len(shape) > 8 or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise ProvenanceError(f"{where}: probe {name!r} has a bad shape")
        if math.prod(shape) != len(values) or len(values) > MAX_PROBE_ELEMENTS:
            raise ProvenanceError(f"{where}: probe {name!r}: values do not fill its shape")
        if not all(isinstance(v, (int, float)) for v in values):
            raise ProvenanceError(f"{where}: probe {name!r} holds values that are not numbers")
        ref = rules[name]
        value = torch.tensor(values, dtype=torch.float64).reshape(shape).to(ref.value.dtype)
        out.append(Probe(name, value, ref.kind, ref.rtol, ref.atol, ref.min_agree, ref.same_device))
    if [p.name for p in out] != list(rules):
        raise ProvenanceError(f"{where}: the probes are not those of {len(rules)} expected")
    return out


def result_document(provenance: Provenance, result: Any, inputs: ActionInputs) -> dict[str, Any]:
    """What every JSON download adds to its page's content: the provenance, the summary a
    Python script prints, and the probes ``kwta reproduce`` compares.

    Args:
        provenance: How the result was made.
        result: The action's result.
        inputs: What it ran on (its model decides some probes' rules).
    """
    action = provenance.page_action
    return {
        "provenance": provenance.to_dict(),
        "summary": action.summary(result),
        "check": probes_to_json(action.probes(result, inputs)),
    }


def read_document(path: str | Path) -> dict[str, Any]:
    """A result file as a JSON object, refused if too large or not JSON.

    Raises:
        ProvenanceError: Missing, too large, not UTF-8 JSON or not an object.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as err:
        raise ProvenanceError(f"cannot read {p.name}: {err.strerror}") from err
    if not p.is_file():
        raise ProvenanceError(f"{p.name} is not a file")
    if size > MAX_RESULT_BYTES:
        raise ProvenanceError(
            f"{p.name} is {size / 2**20:.0f} MiB; a result file is at most "
            f"{MAX_RESULT_BYTES // 2**20} MiB"
        )
    try:
        doc = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ProvenanceError(f"{p.name} is not a JSON result file: {str(err)[:120]}") from err
    if not isinstance(doc, dict):
        raise ProvenanceError(f"{p.name} is not a JSON object")
    return doc


def parse_document(doc: Mapping[str, Any]) -> Provenance:
    """The checked provenance of a result (see :meth:`Provenance.from_dict`)."""
    return Provenance.from_dict(doc.get("provenance"))
