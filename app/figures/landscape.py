"""The attacker's loss around an image (Fig. 5) and along weight space (Fig. 3c)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from figures.style import KWTA_COLOR, MARGIN, RELU_COLOR


def landscape_surface(
    e1: Sequence[float], e2: Sequence[float], loss: np.ndarray, *, title: str, zrange: Any = None
) -> go.Figure:
    """3-D surface of the loss over ``(ε1, ε2)`` (the paper's Fig. 5)."""
    fig = go.Figure(
        go.Surface(
            x=list(e2),
            y=list(e1),
            z=loss.tolist(),
            colorscale="Viridis",
            cmin=None if zrange is None else zrange[0],
            cmax=None if zrange is None else zrange[1],
            colorbar={"title": "loss", "len": 0.7},
            hovertemplate="ε1 %{y:.4f}<br>ε2 %{x:.4f}<br>loss %{z:.4f}<extra></extra>",
        )
    )
    zaxis: dict[str, Any] = {"title": "loss"}
    if zrange is not None:
        zaxis["range"] = list(zrange)
    fig.update_layout(
        title=title,
        height=420,
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        scene={
            "xaxis_title": "ε2 (random)",
            "yaxis_title": "ε1 (sign gradient)",
            "zaxis": zaxis,
            "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 0.9}},
        },
    )
    return fig


def landscape_heatmap(
    e1: Sequence[float], e2: Sequence[float], loss: np.ndarray, *, title: str, zrange: Any = None
) -> go.Figure:
    """Heat map of the same loss grid (ε1 vertical, ε2 horizontal); the image is at the centre."""
    fig = go.Figure(
        go.Heatmap(
            x=list(e2),
            y=list(e1),
            z=loss.tolist(),
            colorscale="Viridis",
            zmin=None if zrange is None else zrange[0],
            zmax=None if zrange is None else zrange[1],
            colorbar={"title": "loss"},
            hovertemplate="ε1 %{y:.4f}<br>ε2 %{x:.4f}<br>loss %{z:.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[0.0],
            y=[0.0],
            mode="markers",
            marker={"symbol": "x", "color": "white", "size": 10},
            name="x (clean)",
            showlegend=False,
            hovertemplate="clean image<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=360,
        margin=MARGIN,
        xaxis_title="ε2 (random direction)",
        yaxis_title="ε1 (sign-gradient direction)",
    )
    return fig


def weight_line_figure(lines: Mapping[str, Mapping[str, Sequence[float]]]) -> go.Figure:
    """Batch loss along a direction in weight space, one line per model (the paper's Fig. 3c).

    Args:
        lines: Model label → ``{"alphas": [...], "loss": [...]}`` (a
            :meth:`kwta.analysis.weights.WeightLine.to_dict`).
    """
    fig = go.Figure()
    for i, (name, line) in enumerate(lines.items()):
        color = RELU_COLOR if "relu" in name.lower() else KWTA_COLOR
        fig.add_trace(
            go.Scatter(
                x=list(line["alphas"]),
                y=list(line["loss"]),
                mode="lines+markers",
                name=name,
                line={"width": 3, "color": color, "dash": "solid" if i == 0 else "dash"},
                hovertemplate=f"<b>{name}</b><br>α %{{x:.2f}}<br>loss %{{y:.3f}}<extra></extra>",
            )
        )
    fig.update_layout(
        xaxis_title="α (step along the normalised gradient direction in weight space)",
        yaxis_title="mean loss over the batch",
        height=360,
        margin=MARGIN,
        hovermode="x unified",
    )
    return fig
