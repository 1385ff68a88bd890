"""Attacks on one image: the logits along PGD's path (Fig. 3a/b), class probabilities, the
margin during an adaptive attack."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from figures.style import CLASS_COLORS, MARGIN
from kwta.data import CIFAR10_CLASSES


def logit_trace_figure(
    logits: np.ndarray,
    linf: np.ndarray,
    label: int,
    *,
    x_axis: str = "linf",
    title: str = "",
    classes: Sequence[str] = CIFAR10_CLASSES,
) -> go.Figure:
    """The 10 logits against the perturbation size during PGD (the paper's Fig. 3a/b).

    Args:
        logits: ``(T, C)`` logits of trace rows 0 … T−1 (row 0 clean).
        linf: ``(T,)`` perturbation sizes ``‖x_t − x‖∞``.
        label: True class, drawn thick.
        x_axis: ``"linf"`` (perturbation size, as in the paper) or ``"step"``.
        title: Figure title.
        classes: Class names.
    """
    steps = np.arange(len(linf))
    xs = linf if x_axis == "linf" else steps
    fig = go.Figure()
    for c in range(logits.shape[1]):
        true = c == label
        name = f"{classes[c]} (true)" if true else classes[c]
        fig.add_trace(
            go.Scatter(
                x=xs.tolist(),
                y=logits[:, c].tolist(),
                mode="lines+markers" if true else "lines",
                name=name,
                line={"width": 4 if true else 1.5, "color": CLASS_COLORS[c % len(CLASS_COLORS)]},
                marker={"size": 4},
                opacity=1.0 if true else 0.8,
                customdata=np.stack([steps, linf], axis=1).tolist(),
                hovertemplate=(
                    f"<b>{name}</b><br>step %{{customdata[0]}}<br>‖δ‖∞ %{{customdata[1]:.4f}}"
                    "<br>logit %{y:.3f}<extra></extra>"
                ),
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="perturbation size ‖δ‖∞" if x_axis == "linf" else "PGD step",
        yaxis_title="logit",
        height=380,
        margin=MARGIN,
        legend={"font": {"size": 11}},
        hovermode="closest",
    )
    return fig


def probs_figure(
    clean: np.ndarray, adv: np.ndarray, label: int, classes: Sequence[str] = CIFAR10_CLASSES
) -> go.Figure:
    """Softmax confidences before and after the attack, one bar pair per class."""
    names = [f"{c} ★" if i == label else c for i, c in enumerate(classes)]
    fig = go.Figure(
        [
            go.Bar(x=names, y=clean.tolist(), name="clean", marker_color="#2ca02c"),
            go.Bar(x=names, y=adv.tolist(), name="adversarial", marker_color="#d62728"),
        ]
    )
    fig.update_layout(
        barmode="group",
        height=260,
        margin=MARGIN,
        yaxis={"title": "confidence", "range": [0, 1]},
        title="confidence before / after (★ = true class)",
    )
    return fig


def margin_figure(curves: Mapping[str, np.ndarray], *, title: str = "") -> go.Figure:
    """The attacker's margin ``max_{j≠y} z_j − z_y`` per step, one line per attack.

    Above zero the image is misclassified: an attack that works climbs through
    the dashed line; one fooled by masked gradients wanders below it.

    Args:
        curves: Attack label → ``(T,)`` margins of trace rows 0 … T−1 (row 0 clean).
        title: Figure title.
    """
    palette = ("#7f7f7f", "#d62728", "#1f77b4", "#2ca02c")
    fig = go.Figure()
    for i, (name, margin) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(
                x=list(range(len(margin))),
                y=np.asarray(margin, dtype=float).tolist(),
                mode="lines+markers",
                name=name,
                line={"width": 2.5, "color": palette[i % len(palette)]},
                marker={"size": 4},
                hovertemplate=f"<b>{name}</b><br>step %{{x}}<br>margin %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_hline(
        y=0.0,
        line={"dash": "dash", "color": "black", "width": 1},
        annotation_text="misclassified above",
        annotation_position="top left",
    )
    fig.update_layout(
        title=title,
        xaxis_title="attack step",
        yaxis_title="margin (best other logit − true logit)",
        height=340,
        margin=MARGIN,
        hovermode="x unified",
    )
    return fig
