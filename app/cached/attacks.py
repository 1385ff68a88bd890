"""Cached attacks on one image and the masking check: the Live attack and the adaptive pages.

One PGD cache serves both pages (:func:`run_attack`): the same image, model and settings
are attacked once per server, whichever page asked first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
from torch import nn
from ui.images import test_images

from cached.queue import queued_action
from kwta.analysis.masking import MaskingReport
from kwta.explorer import jobs
from kwta.explorer.actions import ActionInputs
from kwta.explorer.provenance import balanced_images
from kwta.explorer.runs import AttackRun, from_uint8


@st.cache_data(show_spinner=False, max_entries=64)
def run_attack(
    name: str,
    sha256: str,
    pixels: np.ndarray,
    label: int,
    settings: dict[str, Any],
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> AttackRun:
    """PGD with a per-step trace (page action ``"attack"``), cached by model, image and
    every setting (queued)."""

    def live(step: int, total: int, logits: Any, linf: Any) -> None:
        if _progress is not None:
            _progress(step, total, (logits.numpy(), linf.numpy()))

    inputs = ActionInputs(_model, from_uint8(pixels), label)
    return queued_action("attack", inputs, settings, _progress, callback=live)


@st.cache_data(show_spinner=False, max_entries=64)
def run_adaptive(
    name: str,
    sha256: str,
    pixels: np.ndarray,
    label: int,
    settings: dict[str, Any],
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> AttackRun:
    """PGD on estimated gradients (page action ``"adaptive"``), traced (queued)."""
    inputs = ActionInputs(_model, from_uint8(pixels), label)
    return queued_action("adaptive", inputs, settings, _progress)


@st.cache_data(show_spinner=False, max_entries=32)
def run_masking(
    name: str,
    sha256: str,
    n: int,
    eps: float,
    seed: int,
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> MaskingReport:
    """The masking check (page action ``"masking"``) on ``n`` class-balanced test images
    chosen with ``seed`` (:func:`kwta.explorer.adaptive.masking_check`'s subset; queued)."""
    device = next(_model.parameters()).device
    _, x, y = balanced_images(test_images(), n, seed)
    inputs = ActionInputs(_model, x[:1].to(device), int(y[0]), x.to(device), y.to(device))
    settings = {"eps": eps, "seed": seed}
    return queued_action("masking", inputs, settings, _progress)
