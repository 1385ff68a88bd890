"""Cached attack paths: PGD's walk on the loss plane that holds it (the Attack path page)."""

from __future__ import annotations

import numpy as np
import streamlit as st
from torch import nn

from kwta.explorer import jobs
from kwta.explorer.paths import AttackPath, attack_path
from kwta.explorer.runs import from_uint8


@st.cache_data(show_spinner=False, max_entries=32)
def run_path(
    name: str,
    sha256: str,
    pixels: np.ndarray,
    label: int,
    eps: float,
    alpha: float,
    steps: int,
    random_start: bool,
    seed: int,
    second: str,
    grid: int,
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> AttackPath:
    """:func:`kwta.explorer.paths.attack_path`, cached by model, image and settings (queued)."""
    return jobs.queued_job(
        lambda: attack_path(
            _model,
            from_uint8(pixels),
            label,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            seed=seed,
            second="random" if second == "random" else "gradient",
            grid=grid,
            callback=_progress,
        ),
        _progress,
    )
