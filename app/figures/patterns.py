"""Activation patterns: winner maps, pattern change against ε, overlap between images, Theorem 1."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from figures.style import CLASS_COLORS, MARGIN, RELU_COLOR


def winner_heatmap(share: np.ndarray, *, title: str, colorscale: str = "Blues") -> go.Figure:
    """Share of channels that win (or change) at each spatial position of a layer."""
    fig = go.Figure(
        go.Heatmap(
            z=share.tolist(),
            colorscale=colorscale,
            zmin=0.0,
            zmax=max(float(share.max()), 1e-9),
            colorbar={"title": "share"},
            hovertemplate="row %{y}, col %{x}<br>share %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(title=title, height=340, margin=MARGIN)
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    return fig


def pattern_change_figure(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, title: str
) -> go.Figure:
    """Changed share of the activation pattern against ε, one line per curve (log ε axis)."""
    fig = go.Figure()
    for i, (name, (eps, frac)) in enumerate(curves.items()):
        relu = name.lower().startswith("relu")
        fig.add_trace(
            go.Scatter(
                x=list(eps),
                y=list(frac),
                mode="lines+markers",
                name=name,
                line={
                    "dash": "dash" if relu else "solid",
                    "color": RELU_COLOR if relu else CLASS_COLORS[(i * 3) % len(CLASS_COLORS)],
                },
                hovertemplate=f"{name}<br>ε %{{x:.2e}}<br>changed %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        height=380,
        margin=MARGIN,
        xaxis={"type": "log", "title": "perturbation size ε (random sign direction)"},
        yaxis={"title": "share of the pattern changed |A Δ A′| / (|A| + |A′|)"},
    )
    return fig


def overlap_figure(profiles: Mapping[str, Any]) -> go.Figure:
    """Pattern overlap of different inputs per layer, with its chance level (Theorem 2).

    ``profiles`` maps a label to a :class:`kwta.explorer.patterns.OverlapProfile`.
    """
    fig = go.Figure()
    for i, (name, prof) in enumerate(profiles.items()):
        relu = name.lower().startswith("relu")
        color = RELU_COLOR if relu else CLASS_COLORS[(i * 3) % len(CLASS_COLORS)]
        layers = list(prof.layers)
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=list(prof.overlap),
                mode="lines+markers",
                name=f"{name}: observed",
                line={"color": color},
                hovertemplate=f"{name}<br>%{{x}}<br>overlap %{{y:.3f}}<extra></extra>",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=layers,
                y=list(prof.chance),
                mode="lines",
                name=f"{name}: random patterns of the same size",
                line={"color": color, "dash": "dot"},
                hovertemplate=f"{name}<br>%{{x}}<br>chance %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(
        title="overlap of the activation patterns of different images",
        height=380,
        margin=MARGIN,
        xaxis={"title": "activation layer (forward order)"},
        yaxis={"title": "|A(xᵢ) ∩ A(xⱼ)| / √(|A(xᵢ)|·|A(xⱼ)|)", "rangemode": "tozero"},
    )
    return fig


def theorem1_figure(sweep: Any) -> go.Figure:
    """Chance that a random k-WTA layer's pattern changes, against its width (Theorem 1)."""
    fig = go.Figure()
    widths = sweep.widths.tolist()
    for j, beta in enumerate(sweep.betas.tolist()):
        fig.add_trace(
            go.Scatter(
                x=widths,
                y=sweep.change_prob[:, j].tolist(),
                mode="lines+markers",
                name=f"β = {beta:g}",
            )
        )
    fig.update_layout(
        height=340,
        margin=MARGIN,
        xaxis={"type": "log", "title": "layer width l"},
        yaxis={"title": "P[pattern changes]", "range": [-0.02, 1.02]},
        title=f"one random layer, γ = {sweep.ratio:g}, m = {sweep.in_dim}",
    )
    return fig
