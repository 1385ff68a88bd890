"""Results files kept beside the models, valid only for the weights they were computed on.

Some of the explorer's results are too slow to compute while a class waits (the
Lesson page's steps, the Table 3 transfer matrix), so a CLI command computes them
once and writes ``<models folder>/<name>.json``. Each file records which models (name
and sha256) it used; :func:`read_results` returns it only for exactly those models, so
a retrained zoo never shows stale numbers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["model_refs", "read_results", "write_results"]


def model_refs(cards: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """``{role: {"name", "sha256"}}`` of the cards a results file was computed on."""
    return {k: {"name": str(c["name"]), "sha256": str(c["sha256"])} for k, c in cards.items()}


def write_results(
    results: Mapping[str, Any], directory: str | os.PathLike[str], filename: str
) -> Path:
    """Write ``results`` to ``<directory>/<filename>`` atomically (compact JSON); the path."""
    path = Path(directory) / filename
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, separators=(",", ":")) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


def read_results(
    directory: str | os.PathLike[str],
    filename: str,
    fmt: int,
    cards: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any] | None:
    """The results file if it has format ``fmt`` and was computed on exactly ``cards``.

    Args:
        directory: The models' folder.
        filename: The file's name (a constant of the caller, never user input).
        fmt: The format version the caller reads.
        cards: ``{role: card}`` of the models the results should come from.

    Returns:
        The results, or ``None`` when the file is missing, unreadable, of another
        format, or computed on other weights (another name or sha256).
    """
    try:
        results = json.loads((Path(directory) / filename).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(results, dict) or results.get("format") != fmt:
        return None
    if results.get("models") != model_refs(cards):
        return None
    return results
