"""The pretrained models: cards, the shared cached copies, pickers, unit timings.

A model is loaded once per (name, weights, device) with ``st.cache_resource`` and shared
by every session: never mutate it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import streamlit as st
from torch import nn

from kwta.explorer.runs import from_uint8
from kwta.zoo.hub import WeightsError, list_pretrained, load_pretrained, pretrained_dir
from kwta.zoo.summary import default_pair, summarize_card
from kwta.zoo.tiers import TIER_LABELS, preferred_tier, tier_first
from ui.config import DEVICE, TRAIN_HINT, display_dir
from ui.state import init_state
from ui.text import literal


def model_cards() -> dict[str, dict[str, Any]]:
    """Cards of the pretrained models (``pretrained/`` or ``$KWTA_PRETRAINED``), by name, this
    server's tier first (the paper tier on CUDA, the CPU tier on a CPU): what pages preselect."""
    return tier_first(list_pretrained(), preferred_tier(DEVICE))


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load_model(name: str, sha256: str, directory: str, device: str) -> nn.Module:
    """One shared, eval-mode copy per (name, weights, device). Never mutate the result."""
    del sha256  # part of the cache key only: new weights under the same name reload
    model = load_pretrained(name, device, directory=directory)
    for p in model.parameters():  # attacks need input gradients only
        p.requires_grad_(False)
    return model.eval()


def get_model(name: str | None) -> nn.Module | None:
    """The cached model ``name``, or ``None`` with an error shown (missing or bad weights)."""
    if not name:
        return None
    cards = model_cards()
    if name not in cards:
        st.error(f"No pretrained model named {literal(name)} in {display_dir()}.")
        return None
    try:
        return _load_model(
            name, str(cards[name].get("sha256", "")), str(pretrained_dir()), str(DEVICE)
        )
    except (WeightsError, KeyError, ValueError, TypeError, RuntimeError) as err:
        st.error(f"Cannot load model {literal(name)}: {literal(err, 200)}", icon=":material/error:")
        return None


def unit_seconds(
    names: Sequence[str], pixels: np.ndarray, unit: Callable[..., float]
) -> list[float]:
    """Each loadable model's unit time, ``unit(model, x, key=...)`` from
    :mod:`kwta.explorer.estimates` (timed once per model on this server), for an estimate.
    A model that does not load is left out here; the run itself says why."""
    cards, x, times = model_cards(), from_uint8(pixels), []
    for name in names:
        if name not in cards:
            continue
        sha = str(cards[name].get("sha256", ""))
        try:
            model = _load_model(name, sha, str(pretrained_dir()), str(DEVICE))
        except (WeightsError, KeyError, ValueError, TypeError, RuntimeError):
            continue
        times.append(unit(model, x, key=(name, sha)))
    return times


def model_label(cards: Mapping[str, Mapping[str, Any]], name: str) -> str:
    """``"kwta0.1-nat — k-WTA-0.1 · natural · w16 · CPU tier"`` for pickers."""
    if name not in cards:
        return name
    s = summarize_card(cards[name])
    width = f" · w{s.width}" if s.width else ""
    tier = f" · {TIER_LABELS[s.tier]}" if s.tier else ""
    return f"{name} — {s.activation_label} · {s.method or '?'}{width}{tier}"


def model_picker(
    key: str,
    cards: Mapping[str, Mapping[str, Any]],
    default: str | None,
    *,
    label: str = "Model",
    none: str | None = None,
) -> str | None:
    """A sidebar model selectbox whose value a link or a page switch can set.

    Args:
        key: Widget and URL key.
        cards: The models to offer (name → card), labelled by :func:`model_label`.
        default: The preselected model (else the ``none`` entry, else the first model).
        label: The widget's label.
        none: An extra first option meaning "no model" (e.g. ``"(none)"``), if any.

    Returns:
        The chosen model's name, or ``None`` for the ``none`` option.
    """
    names = list(cards)
    options = [none, *names] if none is not None else names
    init_state(key, default if default in names else (none or names[0]), choices=options)
    st.sidebar.selectbox(
        label,
        options,
        key=key,
        format_func=lambda n: n if n == none else model_label(cards, n),
    )
    value = st.session_state[key]
    return None if value == none else str(value)


#: Model B's "no second model" option.
NO_MODEL = "(none)"


def model_pair(prefix: str, cards: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Two sidebar model pickers side by side, ``<prefix>_a`` and ``<prefix>_b`` (B may be
    "(none)"), preselecting the zoo's ReLU / k-WTA pair; the chosen names, A first, once each."""
    relu, kwta = default_pair(cards)
    model_picker(f"{prefix}_a", cards, relu, label="Model A")
    model_picker(f"{prefix}_b", cards, kwta, label="Model B (side by side)", none=NO_MODEL)
    chosen = [str(st.session_state[f"{prefix}_a"])]
    if st.session_state[f"{prefix}_b"] not in (NO_MODEL, chosen[0]):
        chosen.append(str(st.session_state[f"{prefix}_b"]))
    return chosen


def require_models() -> dict[str, dict[str, Any]] | None:
    """The model cards, or ``None`` after explaining how to train models."""
    cards = model_cards()
    if not cards:
        st.warning(TRAIN_HINT.format(directory=display_dir()), icon=":material/model_training:")
        return None
    return cards
