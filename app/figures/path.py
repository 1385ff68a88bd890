"""Where PGD goes: the loss on the attack's own plane with the walk drawn on it (heat map and
3-D surface), a marker at the chosen step, and that step's logits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from figures.style import CLASS_COLORS, MARGIN
from kwta.data import CIFAR10_CLASSES


def _axes(second: str) -> dict[str, str]:
    along = "the gradient sign at x" if second == "gradient" else "a random direction"
    return {"xaxis_title": "a: along δ_T (the end point)", "yaxis_title": f"b: along {along}"}


def path_heatmap(plane: dict[str, Any], step: int, *, title: str) -> go.Figure:
    """The plane's loss as a heat map (``a`` across, ``b`` up), the ε-box, the walk's projection
    (start, every step, end) and a marker at ``step``.

    Args:
        plane: :meth:`kwta.analysis.attack_plane.AttackPlane.to_dict`.
        step: The step the marker shows (0: the clean image).
        title: The chart's title.
    """
    a, b = plane["a"], plane["b"]
    loss = np.asarray(plane["loss"])
    path = np.asarray(plane["path"])
    box = np.asarray(plane["box"])
    fig = go.Figure(
        go.Heatmap(
            x=a,
            y=b,
            z=loss.T.tolist(),  # loss[i, j] is at (a[i], b[j]): rows of z are b
            colorscale="Viridis",
            colorbar={"title": "loss"},
            hovertemplate="a %{x:.4f}<br>b %{y:.4f}<br>loss %{z:.4f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=box[:, 0].tolist(), y=box[:, 1].tolist(), mode="lines", name="ε-box",
            line={"color": "white", "dash": "dot", "width": 1}, hoverinfo="skip",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=path[:, 0].tolist(), y=path[:, 1].tolist(), mode="lines+markers",
            name="PGD's path (projected)",
            line={"color": "#d62728", "width": 2}, marker={"size": 4, "color": "#d62728"},
            customdata=list(range(len(path))),
            hovertemplate="step %{customdata}<br>a %{x:.4f}<br>b %{y:.4f}<extra></extra>",
        )
    )  # fmt: skip
    marks = [(0, "start (x)", "circle"), (len(path) - 1, "end", "square")]
    for t, name, symbol in [*marks, (step, f"step {step}", "star")]:
        fig.add_trace(
            go.Scatter(
                x=[float(path[t, 0])], y=[float(path[t, 1])], mode="markers", name=name,
                marker={"symbol": symbol, "size": 14 if symbol == "star" else 10,
                        "color": "white", "line": {"color": "black", "width": 1}},
                hovertemplate=f"{name}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(
        title=title, height=400, margin=MARGIN, legend={"orientation": "h", "y": -0.25},
        **_axes(plane["second"]),
    )  # fmt: skip
    return fig


def path_surface(plane: dict[str, Any], step: int, *, title: str) -> go.Figure:
    """The plane's loss as a 3-D surface with the walk drawn at the loss of each step's
    projection, and a marker at ``step``."""
    loss = np.asarray(plane["loss"])
    path = np.asarray(plane["path"])
    z = np.asarray(plane["projected_loss"])
    fig = go.Figure(
        go.Surface(
            x=plane["a"], y=plane["b"], z=loss.T.tolist(), colorscale="Viridis",
            showscale=False, opacity=0.9,
            hovertemplate="a %{x:.4f}<br>b %{y:.4f}<br>loss %{z:.4f}<extra></extra>",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scatter3d(
            x=path[:, 0].tolist(), y=path[:, 1].tolist(), z=z.tolist(), mode="lines+markers",
            name="PGD's path",
            line={"color": "#d62728", "width": 5}, marker={"size": 2, "color": "#d62728"},
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scatter3d(
            x=[float(path[step, 0])], y=[float(path[step, 1])], z=[float(z[step])],
            mode="markers",
            name=f"step {step}", marker={"size": 6, "color": "white", "symbol": "diamond"},
        )
    )  # fmt: skip
    fig.update_layout(
        title=title, height=400, margin=MARGIN, showlegend=False,
        scene={"xaxis_title": "a", "yaxis_title": "b", "zaxis_title": "loss"},
    )  # fmt: skip
    return fig


def step_logits_figure(logits: Sequence[float], label: int, *, title: str) -> go.Figure:
    """The 10 logits at one step, the true class outlined."""
    fig = go.Figure(
        go.Bar(
            x=list(CIFAR10_CLASSES), y=list(logits), marker_color=list(CLASS_COLORS),
            marker_line={"width": [3 if i == label else 0 for i in range(len(logits))],
                         "color": "black"},
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(title=title, height=260, margin=MARGIN, yaxis_title="logit")
    return fig
