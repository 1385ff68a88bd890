"""Cached fits and sweeps: the 1-D toy fit (Fig. 1), the clean accuracy against γ (Fig. 4,
live) and the Lesson's one-time computation."""

from __future__ import annotations

from typing import Any

import streamlit as st
import torch
from torch import nn
from ui.images import balanced_batch
from ui.models import get_model, model_cards

from cached.queue import queued_action
from kwta.analysis.toy import ToyFit
from kwta.analysis.weights import GammaSweep
from kwta.data import cifar10_sample
from kwta.explorer import jobs, lesson
from kwta.explorer.actions import ActionInputs


@st.cache_data(show_spinner=False, max_entries=64)
def run_fit(settings: dict[str, Any], _progress: jobs.ProgressSink | None = None) -> ToyFit:
    """The toy fit (page action ``"toy"``), cached by every setting (queued)."""
    inputs = ActionInputs(nn.Identity(), torch.zeros(1, 3, 32, 32), 0)  # no model, no image
    return queued_action("toy", inputs, settings, _progress)


@st.cache_data(show_spinner=False, max_entries=16)
def run_gamma(
    name: str,
    sha256: str,
    ratios: tuple[float, ...],
    n: int,
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> GammaSweep:
    """Clean accuracy at each γ (page action ``"gamma"``) on ``n`` class-balanced test images
    (seed 0), cached (queued)."""
    x, y = balanced_batch(n, next(_model.parameters()).device)
    inputs = ActionInputs(_model, x[:1], int(y[0]), x, y)
    return queued_action("gamma", inputs, {"ratios": ratios}, _progress)


@st.cache_data(show_spinner=False, max_entries=4)
def run_lesson(
    relu: str, relu_sha: str, kwta: str, kwta_sha: str, _progress: jobs.ProgressSink | None = None
) -> dict[str, Any]:
    """:func:`kwta.explorer.lesson.compute_lesson` on two models, cached by their weights."""
    cards = model_cards()
    models = {"relu": get_model(relu), "kwta": get_model(kwta)}
    return jobs.queued_job(
        lambda: lesson.compute_lesson(
            {"relu": cards[relu], "kwta": cards[kwta]},
            models,  # type: ignore[arg-type]
            cifar10_sample("test"),
            callback=_progress,
        ),
        _progress,
    )
