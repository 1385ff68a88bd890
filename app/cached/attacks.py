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
from kwta.explorer.adaptive import adaptive_attack_with_trace, masking_check
from kwta.explorer.runs import AttackRun, attack_with_trace, from_uint8


@st.cache_data(show_spinner=False, max_entries=64)
def run_attack(
    name: str,
    sha256: str,
    pixels: np.ndarray,
    label: int,
    eps: float,
    alpha: float,
    steps: int,
    loss: str,
    random_start: bool,
    seed: int,
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> AttackRun:
    """PGD with a per-step trace, cached by model, image and every parameter (queued)."""

    def live(step: int, total: int, logits: Any, linf: Any) -> None:
        if _progress is not None:
            _progress(step, total, (logits.numpy(), linf.numpy()))

    return jobs.queued_job(
        lambda: attack_with_trace(
            _model,
            from_uint8(pixels),
            label,
            eps=eps,
            alpha=alpha,
            steps=steps,
            loss="margin" if loss == "margin" else "ce",
            random_start=random_start,
            seed=seed,
            callback=live,
        ),
        _progress,
    )


@st.cache_data(show_spinner=False, max_entries=64)
def run_adaptive(
    name: str,
    sha256: str,
    pixels: np.ndarray,
    label: int,
    estimator: str,
    eps: float,
    alpha: float,
    steps: int,
    sigma: float,
    samples: tuple[int, int],
    seed: int,
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> AttackRun:
    """PGD on estimated gradients (:mod:`kwta.attacks.estimated`), traced (queued)."""
    return jobs.queued_job(
        lambda: adaptive_attack_with_trace(
            _model,
            from_uint8(pixels),
            label,
            estimator="eot" if estimator == "eot" else "fd",
            eps=eps,
            alpha=alpha,
            steps=steps,
            sigma=sigma,
            samples=samples,
            seed=seed,
            callback=_progress,
        ),
        _progress,
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
