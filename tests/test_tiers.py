"""The zoo's tiers (kwta.zoo.tiers): each shipped model's tier, which tier a server
preselects, and the default picks following it. The shipped cards, with paper-tier copies
made from them as a training run writes them."""

from __future__ import annotations

import copy
from typing import Any

from kwta.training.zoo import ZOO, tier_models
from kwta.zoo.hub import list_pretrained
from kwta.zoo.summary import default_pair, landscape_selection, summarize_card, table3_models
from kwta.zoo.tiers import TIERS, preferred_tier, tier_first, tier_of


def _paper_copy(card: dict[str, Any]) -> dict[str, Any]:
    """The card as `kwta zoo build --tier paper` writes its width-32 twin."""
    out = copy.deepcopy(card)
    out["name"] = f"{card['name']}-w32"
    out["arch_kwargs"]["width"] = TIERS["paper"]
    recipe = ZOO[out["name"]]
    out["zoo"] = {"recipe": {"name": recipe.name, "tier": recipe.tier, "optional": False}}
    return out


def test_each_shipped_model_is_in_the_cpu_tier() -> None:
    cards = list_pretrained()
    assert cards
    for name, card in cards.items():
        assert tier_of(card) == "cpu", name
        assert summarize_card(card).tier == "cpu"


def test_tier_read_off_the_recipe_else_the_width() -> None:
    card = copy.deepcopy(list_pretrained()["relu-nat"])
    card.pop("zoo", None)
    assert tier_of(card) == "cpu"  # width 16
    card["arch_kwargs"]["width"] = 64
    assert tier_of(card) is None  # a researcher's own width-64 network: no tier
    card["zoo"] = {"recipe": {"tier": "paper"}}
    assert tier_of(card) == "paper"  # the recipe says so
    assert tier_of({"arch": "mlp", "arch_kwargs": {"width": 16}}) is None


def test_the_server_preselects_its_tier() -> None:
    assert preferred_tier("cuda") == "paper" and preferred_tier("cuda:0") == "paper"
    assert preferred_tier("cpu") == "cpu"
    shipped = list_pretrained()
    paper = {
        f"{n}-w32": _paper_copy(shipped[n])
        for n in ("relu-nat", "kwta0.2-nat", "kwta0.1-nat", "relu-at", "kwta0.1-at")
    }
    assert sorted(paper) == sorted(tier_models("paper"))
    cards = shipped | paper  # as list_pretrained orders them: the CPU tier's names first
    on_gpu = tier_first(cards, "paper")
    assert default_pair(on_gpu) == ("relu-nat-w32", "kwta0.1-nat-w32")
    assert table3_models(on_gpu)["kwta_at"] == "kwta0.1-at-w32"
    assert landscape_selection(on_gpu)[:2] == ["relu-nat-w32", "kwta0.1-nat-w32"]
    on_cpu = tier_first(cards, "cpu")
    assert default_pair(on_cpu) == ("relu-nat", "kwta0.1-nat")
    assert set(on_cpu) == set(on_gpu) == set(cards)  # every model stays pickable
    # the order within a tier is kept
    assert [n for n in on_gpu if n.endswith("-w32")] == list(paper)
