"""The model zoo: weights, cards and the paper's numbers beside them.

- :mod:`~kwta.zoo.hub`: hash-checked safetensors weights and their JSON cards;
- :mod:`~kwta.zoo.card`: :class:`ModelCard`, the one schema every card follows;
- :mod:`~kwta.zoo.summary`: a card summarised for tables; twins and default pairs;
- :mod:`~kwta.zoo.tiers`: the CPU and paper tiers, and which one a server shows first;
- :mod:`~kwta.zoo.imported`: ``kwta import``, a researcher's own checkpoint made a zoo model;
- :mod:`~kwta.zoo.published`: the paper's Tables 1-2 and published adaptive results.
"""

from __future__ import annotations

from kwta.zoo.hub import (
    WeightsError,
    list_pretrained,
    load_card,
    load_from_card,
    load_pretrained,
    pretrained_dir,
    save_model,
    sha256_of,
)
from kwta.zoo.published import PAPER_TABLE1, PAPER_TABLE2, PUBLISHED_ADAPTIVE, PaperRow
from kwta.zoo.summary import ModelSummary, summarize_card, twin_of

__all__ = [
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PUBLISHED_ADAPTIVE",
    "ModelSummary",
    "PaperRow",
    "WeightsError",
    "list_pretrained",
    "load_card",
    "load_from_card",
    "load_pretrained",
    "pretrained_dir",
    "save_model",
    "sha256_of",
    "summarize_card",
    "twin_of",
]
