"""Cached loss landscapes (Fig. 5) and the loss along weight space (Fig. 3c)."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
from torch import nn
from ui.images import balanced_batch

from cached.queue import queued_action
from kwta.analysis.landscape import Landscape
from kwta.analysis.weights import WeightLine
from kwta.explorer import jobs
from kwta.explorer.actions import LANDSCAPE_BATCH, ActionInputs, get_action
from kwta.explorer.runs import from_uint8

#: Fig. 3c: the batch loss along the weight-space gradient direction, on this many
#: class-balanced test images.
WEIGHT_BATCH = 128


@st.cache_data(show_spinner=False, max_entries=64)
def run_landscape(
    name: str,
    sha256: str,
    pixels: np.ndarray,
    label: int,
    settings: dict[str, Any],
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> Landscape:
    """The loss landscape (page action ``"landscape"``), cached by model, image and every
    setting.

    Queued (:func:`kwta.explorer.jobs.queued_job`); on out-of-memory it is retried at half
    the batch (:func:`kwta.explorer.jobs.retry_on_oom`), which does not change the result.
    """
    inputs = ActionInputs(_model, from_uint8(pixels), label)
    action = get_action("landscape")

    def compute(batch_size: int) -> Landscape:
        return action.run(  # type: ignore[no-any-return]
            inputs, settings, callback=_progress, batch_size=batch_size
        )

    return jobs.queued_job(
        lambda: jobs.retry_on_oom(compute, LANDSCAPE_BATCH, min_batch=8), _progress
    )


@st.cache_data(show_spinner=False, max_entries=32)
def run_weight_line(
    name: str, sha256: str, n: int, _model: nn.Module, _progress: jobs.ProgressSink | None = None
) -> WeightLine:
    """The loss along weight space (page action ``"weights"``) on ``n`` class-balanced test
    images (seed 0), cached by model (queued)."""
    x, y = balanced_batch(n, next(_model.parameters()).device)
    inputs = ActionInputs(_model, x[:1], int(y[0]), x, y)
    return queued_action("weights", inputs, {}, _progress)
