"""Argument types of the command line: checked numbers, names, devices, and the
portable form of a command for cards (path options reduced to file names)."""

from __future__ import annotations

import argparse
import logging
import math
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("kwta")


def number_arg(
    cast: Callable[[str], Any], ok: Callable[[Any], bool], what: str
) -> Callable[[str], Any]:
    """An argparse type: ``cast(text)`` that must satisfy ``ok``, else "expected <what>"."""

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


ratio = number_arg(float, lambda v: 0.0 < v <= 1.0, "a sparsity ratio in (0, 1]")
positive_int = number_arg(int, lambda v: v >= 1, "a positive integer")
nonneg_int = number_arg(int, lambda v: v >= 0, "a non-negative integer")
positive_float = number_arg(float, lambda v: math.isfinite(v) and v > 0, "a positive number")
nonneg_float = number_arg(float, lambda v: math.isfinite(v) and v >= 0, "a non-negative number")


def int_or_all(text: str) -> int | None:
    if text.lower() == "all":
        return None
    value: int = positive_int(text)
    return value


def existing_path(text: str) -> str:
    if not Path(text).expanduser().exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return text


def names_arg(text: str, known: Sequence[str], what: str) -> list[str]:
    """A comma-separated list of names from ``known`` (``none``: the empty list)."""
    if text.strip().lower() == "none":
        return []
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"name at least one {what}, or 'none'")
    unknown = [t for t in names if t not in known]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return list(dict.fromkeys(names))


def attack_list(text: str) -> list[str]:
    from kwta.attacks.registry import attack_names

    return names_arg(text, attack_names("standard"), "attack")


def adaptive_list(text: str) -> list[str]:
    from kwta.attacks.registry import attack_names

    return names_arg(text, attack_names("adaptive"), "adaptive attack")


def device_arg(text: str) -> str:
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError) as err:
        raise argparse.ArgumentTypeError(f"bad device {text!r}: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"device {text!r} requested but CUDA is not available")
    return text


#: Options whose value is a path: cards record only its last name (no machine's folders).
PATH_OPTIONS = frozenset({"--data", "--json", "--card", "--out", "--work", "--init-from"})


def portable_command(argv: Sequence[str]) -> str:
    """The command line for a card, each path option's value reduced to its last name."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if eq and flag in PATH_OPTIONS:
            out.append(f"{flag}={Path(value).name or value}")
        elif i > 0 and argv[i - 1] in PATH_OPTIONS and arg != "-":
            out.append(Path(arg).name or arg)
        else:
            out.append(arg)
    return shlex.join(out)


def json_object(text: str) -> dict[str, Any]:
    """A JSON object given on the command line (e.g. ``'{"width": 64}'``)."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object, got {text!r} ({err.msg})"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def float_triple(text: str) -> list[float]:
    """Three finite numbers ``R,G,B`` (a per-channel mean or std)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three numbers R,G,B, got {text!r}") from None
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected three finite numbers R,G,B, got {text!r}")
    return values
