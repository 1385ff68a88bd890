"""Any timm model as an architecture, ``"timm:NAME"``, when timm is installed.

timm is the field's model library (an optional extra: ``pip install -e .[timm]``; nothing
in the app imports it). The network is timm's own — ``timm.create_model(NAME,
pretrained=False, num_classes=…)``, its state-dict keys untouched, so its checkpoints
import — with the input normalisation run in front of it by a forward pre-hook (inputs
stay in [0, 1]; the hook's module has no state-dict keys). Weights are never downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from .common import normalize_layer

__all__ = ["PREFIX", "is_timm_arch", "timm_model"]

#: How an architecture name asks for a timm model.
PREFIX = "timm:"


def is_timm_arch(arch: str) -> bool:
    """Whether ``arch`` names a timm model (``"timm:NAME"``), whether or not timm is here."""
    return arch.startswith(PREFIX)


def _normalize_input(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    normalize = module.get_submodule("kwta_normalize")
    return (normalize(args[0]), *args[1:])


def timm_model(
    arch: str,
    *,
    num_classes: int = 10,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """``timm.create_model(NAME, pretrained=False, num_classes=num_classes, **kwargs)`` for
    ``arch = "timm:NAME"``, normalising its [0, 1] inputs inside.

    Raises:
        ValueError: timm is not installed, or has no model of that name.
    """
    name = arch[len(PREFIX) :]
    try:
        import timm
    except ImportError:
        raise ValueError(f"{arch}: timm is not installed (pip install -e .[timm])") from None
    if name not in timm.list_models():
        raise ValueError(f"{arch}: timm {timm.__version__} has no model named {name[:60]!r}")
    net = timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    net.kwta_normalize = normalize_layer(mean, std)
    net.register_forward_pre_hook(_normalize_input)
    return net
