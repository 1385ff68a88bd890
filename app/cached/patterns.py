"""Cached activation-pattern results: layers, winner maps, pattern change against ε, overlap
between images (Sec. 3) and Theorem 1's width sweep."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from torch import nn
from ui.images import balanced_batch

from kwta.analysis.patterns import PatternChange
from kwta.analysis.theorem1 import Theorem1Sweep, theorem1_width_sweep
from kwta.explorer import jobs
from kwta.explorer.patterns import (
    OVERLAP_IMAGES,
    OverlapProfile,
    WinnerMap,
    activation_layers,
    overlap_profile,
    pattern_change_sweep,
    winner_map,
)
from kwta.explorer.runs import from_uint8


@st.cache_data(show_spinner=False, max_entries=32)
def run_layers(name: str, sha256: str, _model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Activation layers of a model and their shapes, cached by model."""
    device = next(_model.parameters()).device
    return activation_layers(_model, torch.full((1, 3, 32, 32), 0.5, device=device))


@st.cache_data(show_spinner=False, max_entries=64)
def run_winner(
    name: str, sha256: str, pixels: np.ndarray, layer: str, eps: float, seed: int, _model: nn.Module
) -> WinnerMap:
    """:func:`kwta.explorer.patterns.winner_map`, cached by model, image and parameters."""
    return winner_map(_model, from_uint8(pixels), layer, eps=eps, seed=seed)


@st.cache_data(show_spinner=False, max_entries=64)
def run_change(
    name: str,
    sha256: str,
    pixels: np.ndarray,
    ratios: tuple[float, ...],
    n_dirs: int,
    seed: int,
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> dict[str, PatternChange]:
    """Pattern change against ε: the model as trained, then (k-WTA only) at each γ of ``ratios``.

    The γ sweep runs on a private copy (:func:`kwta.explorer.patterns.pattern_change_by_ratio`):
    the shared model is never changed.
    """
    return jobs.queued_job(
        lambda: pattern_change_sweep(
            _model, from_uint8(pixels), ratios, n_dirs=n_dirs, seed=seed, callback=_progress
        ),
        _progress,
    )


@st.cache_data(show_spinner=False, max_entries=32)
def run_overlap(name: str, sha256: str, _model: nn.Module) -> OverlapProfile:
    """:func:`kwta.explorer.patterns.overlap_profile` on the balanced test images, cached."""
    x, _ = balanced_batch(OVERLAP_IMAGES, next(_model.parameters()).device)
    return jobs.queued_job(lambda: overlap_profile(_model, x))


@st.cache_data(show_spinner=False, max_entries=16)
def run_theorem1(ratio: float, n_trials: int, seed: int) -> Theorem1Sweep:
    """:func:`kwta.analysis.theorem1.theorem1_width_sweep` on one random layer, cached."""
    return theorem1_width_sweep(
        (16, 64, 256, 1024, 4096),
        ratio=ratio,
        betas=(1e-4, 1e-3, 1e-2),
        n_trials=n_trials,
        seed=seed,
    )
