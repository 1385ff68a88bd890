"""The model card: one schema that reads and writes every card (RobustBench's ``ModelInfo``).

A card is the JSON file beside a model's safetensors weights. It says what the
network is (``arch``, ``arch_kwargs``), which weights it describes (``weights``,
``sha256``, ``dtype``), how it was trained (``training``), what it scores
(``metrics``, with the details in ``evaluation`` and ``evaluation_adaptive``),
what the paper reports for the same setting (``published``) and, for zoo
models, the recipe that rebuilds it (``zoo``). :class:`ModelCard` is the only
code that parses or serialises one: :func:`kwta.zoo.hub.load_card` reads
through it, and every writer (training, evaluation, the zoo build) writes
through it, so a card on disk always has this shape.

Older cards are migrated on read: the trainer's held-out accuracy used to be
``metrics.test_clean_accuracy`` (with ``test_clean_n``, ``test_data``); it is
``metrics.clean_accuracy`` (``clean_n``, ``clean_data``) now, the one name the
evaluation also writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kwta.paper import CITATION

__all__ = ["CardError", "ModelCard"]

#: Legacy metric names → the schema's (first read wins when both are present).
_RENAMED_METRICS = {
    "test_clean_accuracy": "clean_accuracy",
    "test_clean_n": "clean_n",
    "test_data": "clean_data",
}


class CardError(ValueError):
    """A card that does not follow the schema (missing or mistyped fields, unknown keys)."""


@dataclass
class ModelCard:
    """Everything a card holds, one field per top-level key (in file order).

    Attributes:
        name: The model's name, also the file stem (``relu-nat``).
        arch: Architecture for :func:`kwta.models.build_model` (``"resnet18"``).
        arch_kwargs: Its keyword arguments (``width``, ``act``, ``act_kwargs``).
        weights: The safetensors file's name, beside the card.
        sha256: The weights' sha256, checked before they are parsed.
        dtype: Storage dtype of the floating tensors (``"float16"``).
        description: One line for tables.
        paper: The paper the model reproduces.
        status: What the model is and is not (e.g. not the paper's width-64 model).
        training: How it was trained: method, hyper-parameters, schedule, data,
            device, wall time, per-epoch history.
        metrics: The headline numbers: ``clean_accuracy``/``clean_n``,
            ``robust_accuracy`` per attack, ``A_rob``, ``robust_n``, ``eps``,
            ``pgd_restarts``, ``adaptive``.
        evaluation: Details of the standard evaluation (subset, settings, command).
        evaluation_adaptive: Details of the adaptive evaluation.
        published: The paper's numbers for the same setting.
        zoo: For zoo models: the recipe, its fingerprint and the rebuild command.
    """

    name: str
    arch: str
    arch_kwargs: dict[str, Any]
    weights: str
    sha256: str
    dtype: str = "float32"
    description: str = ""
    paper: str = CITATION
    status: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    evaluation_adaptive: dict[str, Any] | None = None
    published: dict[str, Any] | None = None
    zoo: dict[str, Any] | None = None

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The top-level keys a card may have, in file order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "card") -> ModelCard:
        """Validate a parsed card (migrating legacy metric names).

        Raises:
            CardError: Not an object, missing or mistyped fields, unknown keys.
        """
        if not isinstance(data, dict):
            raise CardError(f"{where} is not a JSON object")
        unknown = sorted(set(data) - set(cls.keys()))
        if unknown:
            raise CardError(f"{where} has unknown fields {unknown}; a card has {list(cls.keys())}")
        missing = [k for k in ("name", "arch", "arch_kwargs", "weights", "sha256") if k not in data]
        if missing:
            raise CardError(f"{where} lacks {missing}")
        types: dict[str, type | tuple[type, ...]] = {
            "name": str,
            "arch": str,
            "arch_kwargs": dict,
            "weights": str,
            "sha256": str,
            "dtype": str,
            "description": str,
            "paper": str,
            "status": (str, type(None)),
            "training": dict,
            "metrics": dict,
            "evaluation": (dict, type(None)),
            "evaluation_adaptive": (dict, type(None)),
            "published": (dict, type(None)),
            "zoo": (dict, type(None)),
        }
        wrong = [k for k, t in types.items() if k in data and not isinstance(data[k], t)]
        if wrong:
            raise CardError(f"{where}: fields {wrong} have the wrong type")
        values = dict(data)
        metrics = dict(values.get("metrics") or {})
        for old, new in _RENAMED_METRICS.items():
            if old in metrics:
                value = metrics.pop(old)
                metrics.setdefault(new, value)
        values["metrics"] = metrics
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON-ready data, keys in schema order, empty optional sections left out."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = value
        return out

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> ModelCard:
        """Read and validate the card at ``path``.

        Raises:
            CardError: Unreadable, not JSON, or not following the schema.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CardError(f"cannot read card {p}: {err}") from err
        return cls.from_dict(data, where=f"card {p}")

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the card to ``path`` atomically (a temporary file, then a rename)."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        tmp.chmod(0o644)
        os.replace(tmp, p)
