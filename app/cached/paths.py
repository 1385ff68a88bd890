"""Cached attack paths: PGD's walk on the loss plane that holds it (the Attack path page)."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
from torch import nn

from cached.queue import queued_action
from kwta.explorer import jobs
from kwta.explorer.actions import ActionInputs
from kwta.explorer.paths import AttackPath
from kwta.explorer.runs import from_uint8


@st.cache_data(show_spinner=False, max_entries=32)
def run_path(
    name: str,
    sha256: str,
    pixels: np.ndarray,
    label: int,
    settings: dict[str, Any],
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> AttackPath:
    """PGD's walk on its plane (page action ``"attack_path"``), cached by model, image and
    settings (queued)."""
    inputs = ActionInputs(_model, from_uint8(pixels), label)
    return queued_action("attack_path", inputs, settings, _progress)
