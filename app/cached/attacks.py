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

from kwta.explorer import jobs
from kwta.explorer.actions import ActionInputs, get_action
from kwta.explorer.adaptive import masking_check
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
    return jobs.queued_job(  # type: ignore[no-any-return]
        lambda: get_action("attack").run(inputs, settings, callback=live), _progress
    )


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
    return jobs.queued_job(  # type: ignore[no-any-return]
        lambda: get_action("adaptive").run(inputs, settings, callback=_progress), _progress
    )


@st.cache_data(show_spinner=False, max_entries=32)
def run_masking(
    name: str,
    sha256: str,
    n: int,
    eps: float,
    seed: int,
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> dict[str, Any]:
    """:func:`kwta.explorer.adaptive.masking_check` on ``n`` test images (queued)."""

    def work() -> dict[str, Any]:
        report = masking_check(_model, test_images(), n=n, eps=eps, seed=seed, callback=_progress)
        return report.to_dict()

    return jobs.queued_job(work, _progress)
