"""Run a result file's computation again and compare: ``kwta reproduce RESULT.json``.

A result carries its provenance (:mod:`kwta.explorer.provenance`): the page action and
its settings, the model by name and sha256, the image. :func:`reproduce` loads the
model only if its weights are the recorded ones, finds the image again (checked by its
sha256), reruns the action (:meth:`kwta.explorer.actions.PageAction.run`, the call the
page made) and compares the recorded probes with the new ones by the rules of
:class:`kwta.explorer.actions.Probe`: every number exactly when the result comes back to
the device, library and torch version that made it; across devices, the documented
tolerances (a k-WTA network may flip a winner on a rounding difference, Sec. 3). The
recorded ``summary`` — the numbers a paper quotes — is compared field by field too
(:func:`compare_summary`): an edited summary is not reproduced.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kwta._version import __version__
from kwta.data import CIFAR10Tensors, DataSourceError, cifar10, cifar10_sample
from kwta.explorer.actions import ActionInputs, ProbeCheck, compare_probes
from kwta.explorer.provenance import (
    BatchRef,
    ImageRef,
    ModelRef,
    Provenance,
    ProvenanceError,
    device_name,
    parse_document,
    probes_from_json,
)
from kwta.explorer.runs import from_uint8
from kwta.zoo.hub import WeightsError, list_pretrained, load_from_card, pretrained_dir

__all__ = [
    "SUMMARY_REL_TOL",
    "NotReproduced",
    "Reproduction",
    "compare_summary",
    "load_recorded_model",
    "recorded_batch",
    "recorded_image",
    "reproduce",
]


class NotReproduced(RuntimeError):
    """The recorded computation cannot be made here as recorded (other weights, another
    image): a mismatch, not a malformed file."""


@dataclass(frozen=True)
class Reproduction:
    """A result run again and compared.

    Attributes:
        provenance: The recorded provenance.
        device: The device it ran on now.
        exact: Compared exactly (same device, processor, library and torch version).
        checks: One comparison per probe.
        notes: What differs from the recorded run (device, versions).
        summary: The new run's summary numbers.
        summary_diffs: One line per summary field that differs from the recorded one.
    """

    provenance: Provenance
    device: str
    exact: bool
    checks: list[ProbeCheck]
    notes: list[str]
    summary: Mapping[str, Any]
    summary_diffs: list[str]

    @property
    def passed(self) -> bool:
        """Every probe agrees, and so does every summary field."""
        return all(c.passed for c in self.checks) and not self.summary_diffs

    def report(self) -> str:
        """A short verdict: what ran, each probe, the conclusion."""
        p = self.provenance
        what = f"{p.action} ({p.page_action.page})"
        if p.model:
            what += f" on {p.model.name}"
        if p.image:
            what += f", {p.image.describe()}"
        if p.batch:
            what += f", {p.batch.describe()}"
        lines = [f"Reproducing {what} on {self.device}."]
        lines += [f"  note: {n}" for n in self.notes]
        rule = "exactly" if self.exact else "within the cross-device tolerances"
        lines.append(f"  compared {rule}:")
        for c in self.checks:
            mark = "ok  " if c.passed else "DIFF"
            lines.append(
                f"  {mark} {c.name}: {c.agree:.1%} agree (need {c.min_agree:.1%}), "
                f"largest difference {c.max_abs_diff:.3g}"
            )
        if self.summary_diffs:
            lines += [f"  DIFF summary {d}" for d in self.summary_diffs]
        else:
            lines.append("  ok   summary: every field as recorded")
        lines.append("Reproduced." if self.passed else "NOT reproduced: the numbers differ.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for ``--json``)."""
        return {
            "passed": self.passed,
            "exact": self.exact,
            "device": self.device,
            "notes": self.notes,
            "checks": [c.to_dict() for c in self.checks],
            "summary": dict(self.summary),
            "summary_diffs": list(self.summary_diffs),
            "provenance": self.provenance.to_dict(),
        }


#: Across devices a summary's float may move by this much (relative); anything else, and
#: every field on the same device, library and torch, must be exactly as recorded.
SUMMARY_REL_TOL = 1e-3


def _same(recorded: Any, new: Any, exact: bool) -> bool:
    floats = isinstance(recorded, float) and isinstance(new, float)
    if floats and math.isnan(recorded) and math.isnan(new):
        return True
    if floats and not exact:
        return math.isclose(recorded, new, rel_tol=SUMMARY_REL_TOL, abs_tol=1e-9)
    return type(recorded) is type(new) and recorded == new


def compare_summary(recorded: Any, new: Mapping[str, Any], *, exact: bool) -> list[str]:
    """The fields of a recorded ``summary`` that the rerun's ``new`` one does not match.

    ``new`` is compared as it would be written (through JSON). Same device, library and
    torch (``exact``): every field equal; across devices floats within
    :data:`SUMMARY_REL_TOL`. A field missing on either side is a difference.

    Returns:
        One line per difference, naming the field, e.g.
        ``'attack succeeded': recorded False, rerun True``.
    """
    if not isinstance(recorded, dict):
        return [f"is not a JSON object ({type(recorded).__name__})"]
    rerun = json.loads(json.dumps(dict(new)))
    out = []
    for key in list(rerun) + [k for k in recorded if k not in rerun]:
        name = repr(str(key)[:80])
        if key not in recorded:
            out.append(f"{name}: not recorded, rerun {rerun[key]!r}")
        elif key not in rerun:
            out.append(f"{name}: recorded {str(recorded[key])[:40]!r}, not in the rerun")
        elif not _same(recorded[key], rerun[key], exact):
            out.append(f"{name}: recorded {str(recorded[key])[:40]}, rerun {rerun[key]!r}")
    return out


def load_recorded_model(
    ref: ModelRef, device: torch.device, directory: str | os.PathLike[str] | None = None
) -> nn.Module:
    """The pretrained model ``ref.name`` if its card and file have the recorded sha256.

    Only the pretrained folder's cards are looked at: the name selects a card, it never
    becomes a path.

    Raises:
        NotReproduced: No such model, or weights other than the recorded ones.
    """
    d = Path(directory) if directory is not None else pretrained_dir()
    cards = list_pretrained(d)
    if ref.name not in cards:
        raise NotReproduced(
            f"no pretrained model {ref.name!r} here (the pretrained folder has: "
            f"{', '.join(sorted(cards)) or 'none'})"
        )
    card = cards[ref.name]
    if card.get("sha256") != ref.sha256:
        raise NotReproduced(
            f"model {ref.name!r} here has weights {str(card.get('sha256'))[:16]}…, the result "
            f"was made with {ref.sha256[:16]}…: other weights, refusing to compare"
        )
    try:
        model = load_from_card(d / card["card_file"], device)
    except WeightsError as err:
        raise NotReproduced(f"model {ref.name!r}: {err}") from err
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def _dataset(ref: ImageRef | BatchRef, data: str | os.PathLike[str] | None) -> CIFAR10Tensors:
    if ref.bundled:
        return cifar10_sample("test")
    try:
        return cifar10("test", root=data) if data is not None else cifar10("test")
    except DataSourceError as err:
        raise NotReproduced(f"{ref.describe()}: {str(err)[:300]}") from err


def recorded_image(
    ref: ImageRef, data: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, int]:
    """The recorded image ``(1, 3, 32, 32)`` in [0, 1] and its label, checked by sha256.

    Args:
        ref: The image reference.
        data: A CIFAR-10 copy for a test image outside the bundled sample (default
            ``$KWTA_DATA``).

    Raises:
        NotReproduced: The image is not found, or is not the recorded one.
    """
    try:
        pixels = ref.pixels_array(None if ref.is_upload else _dataset(ref, data))
    except ProvenanceError as err:
        hint = "" if ref.bundled else " (set $KWTA_DATA or pass --data to the copy it came from)"
        raise NotReproduced(f"{err}{hint}") from err
    return from_uint8(pixels), ref.label


def recorded_batch(
    ref: BatchRef, data: str | os.PathLike[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recorded batch of test images and labels, checked by sha256.

    Raises:
        NotReproduced: The dataset is not at hand, or gives other images.
    """
    try:
        return ref.tensors(_dataset(ref, data))
    except ProvenanceError as err:
        hint = "" if ref.bundled else " (set $KWTA_DATA or pass --data to the copy it came from)"
        raise NotReproduced(f"{err}{hint}") from err


def _inputs(p: Provenance, device: torch.device, directory: Any, data: Any) -> ActionInputs:
    if p.model is None:  # the toy fit: no model, no image; it runs on the device
        return ActionInputs(nn.Identity(), torch.zeros(1, 3, 32, 32, device=device), 0)
    model = load_recorded_model(p.model, device, directory)
    if p.batch is not None:
        xs, ys = recorded_batch(p.batch, data)
        xs, ys = xs.to(device), ys.to(device)
        return ActionInputs(model, xs[:1], int(ys[0]), xs, ys)
    if p.image is None:
        raise ProvenanceError(f"action {p.action!r} names no image")
    x, label = recorded_image(p.image, data)
    return ActionInputs(model, x.to(device), label)


def _notes(p: Provenance, device: torch.device) -> list[str]:
    notes = []
    here = device_name(device)
    if p.device != device.type or p.device_name != here:
        notes.append(
            f"made on {p.device} ({p.device_name}), rerun on {device.type} ({here}): numbers "
            "may differ within the documented tolerances"
        )
    if p.library != __version__:
        notes.append(f"made with kwta {p.library}, this is {__version__}")
    if p.torch != torch.__version__:
        notes.append(f"made with torch {p.torch}, this is {torch.__version__}")
    return notes


def reproduce(
    doc: Mapping[str, Any],
    *,
    device: torch.device | str | None = None,
    directory: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
) -> Reproduction:
    """Run a result's computation again and compare it with the recorded numbers.

    Args:
        doc: The result file's JSON object (:func:`kwta.explorer.provenance.read_document`).
        device: Where to run (default: the recorded device if present, else the CPU).
        directory: The pretrained folder (default: ``$KWTA_PRETRAINED`` or ``pretrained/``).
        data: A CIFAR-10 copy for images outside the bundled sample.

    Raises:
        ProvenanceError: The file is not a well-formed result (nothing was loaded).
        NotReproduced: The recorded model or image is not here as recorded.
    """
    p = parse_document(doc)
    action = p.page_action
    if "check" not in doc:
        raise ProvenanceError("the result has no 'check' block to compare with")
    if device is None:
        device = "cuda" if p.device == "cuda" and torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    inputs = _inputs(p, dev, directory, data)
    result = action.run(inputs, p.settings)
    new = action.probes(result, inputs)
    recorded = probes_from_json(doc["check"], new)
    notes = _notes(p, dev)
    exact = not notes
    checks = compare_probes(new, recorded, exact=exact)
    summary = action.summary(result)
    diffs = compare_summary(doc.get("summary"), summary, exact=exact) if "summary" in doc else []
    if "summary" not in doc:
        notes.append("the result records no summary: only its probes are compared")
    return Reproduction(p, dev.type, exact, checks, notes, summary, diffs)
