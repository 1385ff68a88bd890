"""The parts of a page action's result that are compared, and the rules they are compared by.

:class:`Probe`: named values with a rule — ``"exact"`` (predictions, masks, counts) or
``"close"`` (logits, losses within ``rtol``/``atol``) and the share of elements that must
agree; :func:`compare_probes` applies the rules to two runs (see
:mod:`kwta.explorer.actions` for why k-WTA needs shares below 1 across devices, Sec. 3).
:class:`Setting`: one setting of an action with the values it accepts, so that a result
file's settings are checked before anything runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["Probe", "ProbeCheck", "Setting", "SettingValue", "compare_probes", "shown"]


#: A setting's value: what a JSON result file can hold for it.
SettingValue = bool | int | float | str | tuple[int, ...] | tuple[float, ...]


@dataclass(frozen=True)
class Setting:
    """One setting of a page action: its page default and the values it accepts.

    The type is the default's: a ``bool`` takes only booleans, an ``int`` only integers,
    a ``float`` any finite number, a ``str`` one of ``choices`` (or, without choices, a
    name matching ``pattern``), a tuple as many numbers of ``item`` type as the default
    has (or up to ``max_len`` of them).

    Attributes:
        name: Keyword of the library call.
        default: The page's default.
        lo: Smallest accepted value (numbers; each element of a tuple).
        hi: Largest accepted value.
        choices: The accepted strings.
        pattern: The accepted strings when there are no fixed choices (a regular
            expression the whole string must match).
        item: The type of a tuple's elements.
        max_len: A tuple of any length up to this (0: the default's length).
    """

    name: str
    default: SettingValue
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str = ""
    item: type = int
    max_len: int = 0

    def check(self, value: Any) -> SettingValue:
        """``value`` as this setting's type.

        Raises:
            ValueError: Wrong type, out of range or not one of the choices (the message
                says which setting and what it accepts).
        """
        d = self.default
        bad = f"setting {self.name!r}"
        if isinstance(d, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{bad} must be true or false, got {shown(value)}")
            return value
        if isinstance(d, str):
            if self.pattern and isinstance(value, str) and re.fullmatch(self.pattern, value):
                return value
            if not isinstance(value, str) or value not in self.choices:
                what = list(self.choices) if self.choices else f"a name like {d!r}"
                raise ValueError(f"{bad} must be one of {what}, got {shown(value)}")
            return value
        if isinstance(d, tuple):
            sized = len(value) <= self.max_len if self.max_len else len(value) == len(d)
            if not isinstance(value, (list, tuple)) or not sized:
                n = f"at most {self.max_len}" if self.max_len else str(len(d))
                raise ValueError(f"{bad} must be a list of {n} numbers, got {shown(value)}")
            return tuple(self._number(v, self.item) for v in value)
        return self._number(value, type(d))

    def _number(self, value: Any, kind: type) -> int | float:
        bad = f"setting {self.name!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{bad} must be a number, got {shown(value)}")
        if kind is int and not isinstance(value, int):
            raise ValueError(f"{bad} must be an integer, got {shown(value)}")
        if not math.isfinite(value):
            raise ValueError(f"{bad} must be finite, got {value}")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise ValueError(f"{bad} must lie in [{self.lo:g}, {self.hi:g}], got {value:g}")
        return kind(value)


def shown(value: Any) -> str:
    """A value for an error message, cut short (it may come from a hostile file)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Probe:
    """One comparable part of a result.

    Attributes:
        name: What it is (``"clean logits"``, ``"loss grid"``…).
        value: The values, on the CPU (float64 for ``"close"``, integers/bools for ``"exact"``).
        kind: ``"exact"``: elements must be equal; ``"close"``: within
            ``atol + rtol·|reference|``.
        rtol: Relative tolerance of ``"close"``.
        atol: Absolute tolerance of ``"close"``.
        min_agree: Share of elements that must agree (1.0: all of them).
        same_device: Compared only between runs on the same device (then exactly): a
            part of the result that may differ across devices (the whole trace, the
            adversarial image…).
    """

    name: str
    value: Tensor
    kind: Literal["exact", "close"] = "close"
    rtol: float = 1e-3
    atol: float = 1e-4
    min_agree: float = 1.0
    same_device: bool = False


@dataclass(frozen=True)
class ProbeCheck:
    """A probe of one run compared with the same probe of a reference run.

    Attributes:
        name: The probe's name.
        kind: ``"exact"`` or ``"close"``.
        agree: Share of elements that agree.
        max_abs_diff: Largest absolute difference (0 for equal ``"exact"`` probes).
        min_agree: The share required.
        passed: ``agree ≥ min_agree`` (and equal shapes).
    """

    name: str
    kind: str
    agree: float
    max_abs_diff: float
    min_agree: float
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for JSON)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "agree": self.agree,
            "max_abs_diff": self.max_abs_diff,
            "min_agree": self.min_agree,
            "passed": self.passed,
        }


def compare_probes(
    reference: Sequence[Probe], other: Sequence[Probe], *, exact: bool = False
) -> list[ProbeCheck]:
    """Compare each probe of ``other`` with the reference's probe of the same name.

    The reference's rule (kind, tolerances, required share) applies; probes marked
    ``same_device`` are left out.

    Args:
        reference: The reference run's probes (their rules apply).
        other: The other run's.
        exact: Two runs on the same device: every probe, ``same_device`` ones included,
            must be equal element for element (NaN equal to NaN).

    Raises:
        ValueError: The two runs do not have the same probe names.
    """
    ref = {p.name: p for p in reference if exact or not p.same_device}
    oth = {p.name: p for p in other if exact or not p.same_device}
    if list(ref) != list(oth):
        raise ValueError(f"probe names differ: {list(ref)} vs {list(oth)}")
    out = []
    for name, r in ref.items():
        a, b = r.value, oth[name].value
        need = 1.0 if exact else r.min_agree
        if a.shape != b.shape:
            out.append(ProbeCheck(name, r.kind, 0.0, math.inf, need, False))
            continue
        if exact:
            a64, b64 = a.double(), b.double()
            ok = (a64 == b64) | (a64.isnan() & b64.isnan())
            diff = (a64 - b64).abs().nan_to_num(0.0) if a.numel() else a64
            agree = float(ok.double().mean()) if ok.numel() else 1.0
            max_diff = float(diff.max()) if diff.numel() else 0.0
            out.append(ProbeCheck(name, "exact", agree, max_diff, 1.0, agree == 1.0))
            continue
        if r.kind == "exact":
            ok = a == b
            diff = (a.double() - b.double()).abs() if a.numel() else a.double()
        else:
            a64, b64 = a.double(), b.double()
            diff = (a64 - b64).abs()
            ok = diff <= r.atol + r.rtol * a64.abs()
            ok &= torch.isfinite(b64) | (a64 == b64)
        agree = float(ok.double().mean()) if ok.numel() else 1.0
        max_diff = float(diff.max()) if diff.numel() else 0.0
        out.append(ProbeCheck(name, r.kind, agree, max_diff, r.min_agree, agree >= r.min_agree))
    return out
