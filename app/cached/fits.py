"""Cached fits and sweeps: the 1-D toy fit (Fig. 1), the clean accuracy against γ (Fig. 4,
live) and the Lesson's one-time computation."""

from __future__ import annotations

from typing import Any

import streamlit as st
from torch import nn
from ui.images import balanced_batch
from ui.models import get_model, model_cards

from kwta.analysis.toy import ToyFit, toy_fit
from kwta.analysis.weights import gamma_sweep
from kwta.data import cifar10_sample
from kwta.explorer import jobs, lesson


@st.cache_data(show_spinner=False, max_entries=64)
def run_fit(
    n_points: int,
    width: int,
    depth: int,
    ratio: float,
    seed: int,
    steps: int,
    _progress: jobs.ProgressSink | None = None,
) -> ToyFit:
    """:func:`kwta.analysis.toy.toy_fit`, cached by every parameter (queued)."""
    return jobs.queued_job(
        lambda: toy_fit(
            n_points=n_points,
            width=width,
            depth=depth,
            ratio=ratio,
            seed=seed,
            steps=steps,
            callback=_progress,
        ),
        _progress,
    )


@st.cache_data(show_spinner=False, max_entries=16)
def run_gamma(
    name: str,
    sha256: str,
    ratios: tuple[float, ...],
    n: int,
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> dict[str, object]:
    """:func:`kwta.analysis.weights.gamma_sweep` (clean) on ``n`` test images, cached (queued)."""
    x, y = balanced_batch(n, next(_model.parameters()).device)
    return jobs.queued_job(
        lambda: gamma_sweep(_model, x, y, ratios, callback=_progress).to_dict(),
        _progress,
    )


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
