"""The fast path for attacks: the model an attack *steps* with and the one it *reports* with.

An attack's gradient steps (and a query attack's queries) may run on channels-last inputs
under a reduced-precision autocast (:func:`kwta.nn.precision.fast_view`); everything a user
reads — the logits of a :class:`~kwta.attacks._core.Trace`, whether the attack succeeded,
robust accuracy — is computed in fp32 on the iterates. Both views leave the caller's model
as it was.

Channels-last costs nothing in exactness worth the name (fp32 either way: the same numbers
to float rounding) and is used wherever :func:`~kwta.nn.precision.channels_last_safe` allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kwta.nn.precision import PRECISIONS, fast_view, resolve_precision

__all__ = [
    "AUTO_STEP_PRECISION",
    "StepModels",
    "resolve_step_precision",
    "step_models",
    "steps_ran_in",
]


#: What ``precision="auto"`` means for an attack's steps. fp32 until the 10 000-image table
#: (bf16 steps against fp32 steps, PGD-40 on every zoo model) shows bf16 steps never weaken
#: an attack by more than 0.5 point; ``"auto"`` would then mean bf16 where it is native.
AUTO_STEP_PRECISION = "fp32"


def resolve_step_precision(precision: str, device: torch.device) -> str:
    """The autocast an attack's steps run under: ``"bf16"``, ``"fp16"`` or ``"off"`` (fp32).

    Raises:
        ValueError: Unknown name (see :data:`kwta.nn.precision.PRECISIONS`).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return resolve_precision(AUTO_STEP_PRECISION if precision == "auto" else precision, device)


def steps_ran_in(precision: str, device: torch.device) -> str:
    """What an attack's steps run in, as results record it: ``"fp32"``, ``"bf16"`` or ``"fp16"``."""
    resolved = resolve_step_precision(precision, device)
    return "fp32" if resolved == "off" else resolved


@dataclass(frozen=True)
class StepModels:
    """The two views of one attack run.

    Attributes:
        step: What the gradient steps and queries call (the chosen precision).
        exact: What every reported number comes from (fp32, the same layout);
            ``exact is step`` when the steps run in fp32.
        precision: The steps' resolved precision, as a result records it
            (``"fp32"``, ``"bf16"`` or ``"fp16"``).
    """

    step: nn.Module
    exact: nn.Module
    precision: str

    @property
    def reduced(self) -> bool:
        """Whether the steps run below fp32 (so reported logits need their own forward)."""
        return self.step is not self.exact


def step_models(model: nn.Module, x: Tensor, precision: str = "auto") -> StepModels:
    """The step and exact views of ``model`` for inputs like ``x`` (see :class:`StepModels`)."""
    ran_in = steps_ran_in(precision, x.device)
    exact = fast_view(model, x)
    if ran_in == "fp32":
        return StepModels(step=exact, exact=exact, precision=ran_in)
    return StepModels(step=fast_view(model, x, ran_in), exact=exact, precision=ran_in)
