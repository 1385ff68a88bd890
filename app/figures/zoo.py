"""The model zoo: robust accuracy beside the paper's, the adaptive attacks' bars, the γ sweep
(Fig. 6)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from figures.style import KWTA_COLOR, MARGIN, RELU_COLOR
from kwta.zoo.published import PaperRow
from kwta.zoo.summary import ModelSummary


def zoo_figure(rows: Sequence[tuple[ModelSummary, PaperRow | None]]) -> go.Figure:
    """Clean accuracy and A_rob measured by us next to the paper's numbers, per model."""
    names = [s.name for s, _ in rows]

    def vals(get: Any) -> list[float | None]:
        return [get(s, p) for s, p in rows]

    fig = go.Figure(
        [
            go.Bar(
                x=names, y=vals(lambda s, p: s.clean), name="clean (ours)", marker_color="#2ca02c"
            ),
            go.Bar(
                x=names,
                y=vals(lambda s, p: p.clean if p else None),
                name="clean (paper)",
                marker_color="#98df8a",
            ),
            go.Bar(
                x=names, y=vals(lambda s, p: s.a_rob), name="A_rob (ours)", marker_color="#d62728"
            ),
            go.Bar(
                x=names,
                y=vals(lambda s, p: p.a_rob if p else None),
                name="A_rob (paper)",
                marker_color="#ff9896",
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        height=360,
        margin=MARGIN,
        yaxis={"title": "accuracy", "range": [0, 1], "tickformat": ".0%"},
        title="measured here vs published (Table 1/2; the paper's models are width 64)",
    )
    return fig


def robustness_bars(rows: Sequence[Any]) -> go.Figure:
    """Robust accuracy per model: the paper's PGD, our PGD and our adaptive worst case.

    Args:
        rows: :class:`kwta.explorer.adaptive.RobustnessRow` objects.
    """
    bars = (
        ("paper: PGD", "paper_pgd", "#bbbbbb"),
        ("ours: PGD", "adaptive_pgd", "#1f77b4"),
        ("ours: adaptive (worst)", "adaptive", "#d62728"),
    )
    fig = go.Figure()
    for label, attr, color in bars:
        values = [getattr(r, attr) for r in rows]
        fig.add_trace(
            go.Bar(
                x=[f"{r.name} ({r.label})" for r in rows],
                y=[None if v is None else 100 * v for v in values],
                name=label,
                marker_color=color,
                text=["—" if v is None else f"{100 * v:.1f}%" for v in values],
                textposition="outside",
            )
        )
    fig.update_layout(
        barmode="group",
        yaxis_title="robust accuracy at ε = 0.031 (%)",
        yaxis_range=[0, 100],
        height=380,
        margin=MARGIN,
    )
    return fig


def gamma_sweep_figure(
    trained: Sequence[Mapping[str, Any]] | None,
    live: Mapping[str, Any] | None = None,
    *,
    trained_label: str = "fine-tuned at each γ",
    live_label: str = "same weights, γ changed",
) -> go.Figure:
    """Clean (left) and PGD-20 robust (right) accuracy against γ, γ falling to the right (Fig. 4).

    Args:
        trained: Points of :func:`kwta.training.sweep.ratio_sweep` (``ratio``,
            ``clean_accuracy``, ``robust_accuracy``), or ``None``.
        live: A :meth:`kwta.analysis.weights.GammaSweep.to_dict` (clean, and robust when
            measured), or ``None``.
        trained_label: Legend name of the trained curve.
        live_label: Legend name of the live curve.
    """
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("standard accuracy", "robust accuracy (PGD-20)")
    )
    if trained:
        xs = [float(p["ratio"]) for p in trained]
        for col, key in ((1, "clean_accuracy"), (2, "robust_accuracy")):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[float(p[key]) for p in trained],
                    mode="lines+markers",
                    name=trained_label,
                    legendgroup="trained",
                    showlegend=col == 1,
                    line={"width": 3, "color": KWTA_COLOR},
                    hovertemplate="γ %{x:g}<br>%{y:.1%}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    if live is not None:
        for col, key in ((1, "clean_accuracy"), (2, "robust_accuracy")):
            if live.get(key) is None:
                continue
            fig.add_trace(
                go.Scatter(
                    x=list(live["ratios"]),
                    y=list(live[key]),
                    mode="lines+markers",
                    name=live_label,
                    legendgroup="live",
                    showlegend=col == 1,
                    line={"width": 2, "color": RELU_COLOR, "dash": "dash"},
                    hovertemplate="γ %{x:g}<br>%{y:.1%}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="sparsity ratio γ", autorange="reversed")
    fig.update_yaxes(tickformat=".0%", rangemode="tozero")
    fig.update_layout(height=360, margin=MARGIN, hovermode="x unified")
    return fig
