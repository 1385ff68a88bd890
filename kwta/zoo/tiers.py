"""The zoo's two tiers: which a model belongs to, and which a server shows first.

- the **CPU tier** (ResNet-18 width 16) keeps a CPU classroom interactive;
- the **paper tier** (width 32, ``-w32`` names) comes within a few points of Table 1.

A model's tier is its zoo recipe's (``card["zoo"]["recipe"]["tier"]``), else read off its
width; a researcher's own model has none. On CUDA the pages preselect the paper tier, on a
CPU the CPU tier (:func:`preferred_tier`); every model stays pickable, and a link may name any.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = [
    "CPU_WIDTH",
    "PAPER_WIDTH",
    "TIERS",
    "TIER_LABELS",
    "preferred_tier",
    "tier_first",
    "tier_of",
]

#: ResNet-18 width of the CPU tier and of the paper tier.
CPU_WIDTH = 16
PAPER_WIDTH = 32

#: The tiers: name -> ResNet-18 width.
TIERS: dict[str, int] = {"cpu": CPU_WIDTH, "paper": PAPER_WIDTH}

#: How the pages name a tier.
TIER_LABELS: dict[str, str] = {"cpu": "CPU tier", "paper": "paper tier"}


def tier_of(card: Mapping[str, Any]) -> str | None:
    """``"cpu"``, ``"paper"`` or ``None`` (not a zoo model of either width)."""
    zoo = card.get("zoo")
    recipe = zoo.get("recipe") if isinstance(zoo, Mapping) else None
    if isinstance(recipe, Mapping) and recipe.get("tier") in TIERS:
        return str(recipe["tier"])
    if str(card.get("arch", "")) != "resnet18":
        return None
    kw = card.get("arch_kwargs")
    width = kw.get("width") if isinstance(kw, Mapping) else None
    return next((t for t, w in TIERS.items() if w == width), None)


def preferred_tier(device: torch.device | str) -> str:
    """The tier a server on ``device`` preselects: the paper tier on CUDA, else the CPU tier."""
    return "paper" if torch.device(device).type == "cuda" else "cpu"


def tier_first(cards: Mapping[str, Mapping[str, Any]], tier: str) -> dict[str, Any]:
    """``cards`` with the models of ``tier`` first (each group in its own order).

    Every default pick (:mod:`kwta.zoo.summary`) takes the first fitting card, so this is
    all it takes for a page to preselect a tier.
    """
    return dict(sorted(cards.items(), key=lambda item: tier_of(item[1]) != tier))
