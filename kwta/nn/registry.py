"""Activations by name (timm-style): a small registry that accepts names or classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from kwta.nn.activations import KWTA, LWTA, ReLU

__all__ = [
    "ActLayer",
    "create_act",
    "get_act",
    "register_act",
    "registered_acts",
]


_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "relu": ReLU,
    "kwta": KWTA,
    "lwta": LWTA,
}


def register_act(name: str, factory: Callable[..., nn.Module]) -> None:
    """Add an activation to the registry under ``name`` (lower case)."""
    _REGISTRY[name.lower()] = factory


def registered_acts() -> list[str]:
    """Names accepted by :func:`create_act`."""
    return sorted(_REGISTRY)


ActLayer = str | Callable[..., nn.Module]


def get_act(name: ActLayer) -> Callable[..., nn.Module]:
    """The factory of an activation: a registered name (case-insensitive) is looked up,
    anything else (a class or factory) passes through (timm's ``get_act_layer``).

    Raises:
        ValueError: Unknown name.
    """
    if not isinstance(name, str):
        return name
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown activation {name!r}; choose from {registered_acts()}")
    return _REGISTRY[key]


def create_act(name: ActLayer, **kwargs: Any) -> nn.Module:
    """Build an activation module by name or class: ``"relu"``, ``"kwta"``, ``"lwta"``,
    :class:`~kwta.nn.activations.KWTA`, …

    Args:
        name: Registry name (case-insensitive) or a module class / factory.
        **kwargs: Passed to the module, e.g. ``ratio=0.1`` for k-WTA or
            ``group_size=10`` for LWTA. ReLU takes none.

    Raises:
        ValueError: Unknown name or arguments the activation does not take.
    """
    factory = get_act(name)
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad arguments {kwargs} for activation {name!r}: {err}") from err
