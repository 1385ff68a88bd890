"""The toys: the 1-D fit with its jumps (Fig. 1) and the activation demo (Fig. 2)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from figures.style import KWTA_COLOR, MARGIN, RELU_COLOR
from kwta.explorer.demo import ActivationDemo
from kwta.explorer.toy import jump_segments, split_at_jumps


def toy_fit_figure(fit: Any) -> go.Figure:
    """Target, training points, both fits and the k-WTA fit's jumps (the paper's Fig. 1).

    Args:
        fit: A :class:`kwta.analysis.toy.ToyFit`.
    """
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=fit.x_dense.tolist(),
            y=fit.target_dense.tolist(),
            mode="lines",
            name="target sin(πx)",
            line={"color": "#2ca02c", "dash": "dot", "width": 2},
        )
    )
    kx, ky = split_at_jumps(fit.x_dense, fit.kwta_dense, fit.kwta_jumps.locations)
    fig.add_trace(
        go.Scatter(
            x=kx, y=ky, mode="lines", name=f"k-WTA-{fit.ratio:g} fit", line={"color": KWTA_COLOR}
        )
    )
    rx, ry = split_at_jumps(fit.x_dense, fit.relu_dense, fit.relu_jumps.locations)
    fig.add_trace(go.Scatter(x=rx, y=ry, mode="lines", name="ReLU fit", line={"color": RELU_COLOR}))
    jx, jy = jump_segments(
        fit.x_dense, fit.kwta_dense, fit.kwta_jumps.locations, fit.kwta_jumps.sizes
    )
    fig.add_trace(
        go.Scatter(
            x=jx,
            y=jy,
            mode="lines",
            name=f"k-WTA jumps ({len(fit.kwta_jumps)})",
            line={"color": "#d62728", "width": 2, "dash": "dot"},
            hovertemplate="jump at x = %{x:.5f}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=fit.x_train.tolist(),
            y=fit.y_train.tolist(),
            mode="markers",
            name="training points",
            marker={"color": "#d62728", "size": 10, "line": {"color": "white", "width": 1}},
        )
    )
    fig.update_layout(
        height=460, margin=MARGIN, xaxis_title="x", yaxis_title="f(x)", hovermode="closest"
    )
    return fig


def activation_demo_figure(demo: ActivationDemo) -> go.Figure:
    """Input and the four activations side by side (the paper's Fig. 2); winners coloured."""
    panels = [
        ("input", demo.x),
        ("ReLU", demo.relu),
        (f"max-pool (groups of {demo.group_size})", demo.maxpool),
        (f"LWTA (groups of {demo.group_size})", demo.lwta),
        (f"k-WTA (k = {demo.k})", demo.kwta),
    ]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels])
    lo = min(0.0, float(demo.x.min()))
    hi = max(0.0, float(demo.x.max()))
    pad = 0.1 * max(hi - lo, 1e-6)
    for i, (name, v) in enumerate(panels, start=1):
        vals = v.tolist()
        if name == "input":
            colors = ["#7f7f7f"] * len(vals)
        elif name.startswith("max-pool"):
            colors = ["#9467bd"] * len(vals)
        else:
            colors = ["#1f77b4" if x != 0 else "#d9d9d9" for x in vals]
        fig.add_trace(
            go.Bar(
                x=list(range(len(vals))),
                y=vals,
                marker_color=colors,
                name=name,
                showlegend=False,
                hovertemplate=f"{name}<br>unit %{{x}}<br>value %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=i,
        )
        fig.update_yaxes(range=[lo - pad, hi + pad], row=1, col=i)
        fig.update_xaxes(title_text="unit", row=1, col=i)
    fig.update_layout(height=330, margin=MARGIN, bargap=0.15)
    return fig
