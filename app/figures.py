"""Plotly figures of the k-WTA Explorer: data in, ``go.Figure`` out, nothing computed here.

Every chart is interactive (hover, zoom, legend toggles). Class colours are the
same in every chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from kwta.data import CIFAR10_CLASSES
from kwta.explorer.demo import ActivationDemo
from kwta.explorer.toy import jump_segments, split_at_jumps
from kwta.zoo.published import PaperRow
from kwta.zoo.summary import ModelSummary

#: One colour per CIFAR-10 class (plotly's qualitative "D3" palette).
CLASS_COLORS: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
KWTA_COLOR = "#1f77b4"
RELU_COLOR = "#ff7f0e"
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


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
        margin=_MARGIN,
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
        margin=_MARGIN,
        yaxis={"title": "confidence", "range": [0, 1]},
        title="confidence before / after (★ = true class)",
    )
    return fig


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
        margin=_MARGIN,
        xaxis_title="ε2 (random direction)",
        yaxis_title="ε1 (sign-gradient direction)",
    )
    return fig


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
        height=460, margin=_MARGIN, xaxis_title="x", yaxis_title="f(x)", hovermode="closest"
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
    fig.update_layout(height=330, margin=_MARGIN, bargap=0.15)
    return fig


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
    fig.update_layout(title=title, height=340, margin=_MARGIN)
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
        margin=_MARGIN,
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
        margin=_MARGIN,
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
        margin=_MARGIN,
        xaxis={"type": "log", "title": "layer width l"},
        yaxis={"title": "P[pattern changes]", "range": [-0.02, 1.02]},
        title=f"one random layer, γ = {sweep.ratio:g}, m = {sweep.in_dim}",
    )
    return fig


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
        margin=_MARGIN,
        yaxis={"title": "accuracy", "range": [0, 1], "tickformat": ".0%"},
        title="measured here vs published (Table 1/2; the paper's models are width 64)",
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
        margin=_MARGIN,
        hovermode="x unified",
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
        margin=_MARGIN,
        hovermode="x unified",
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
        margin=_MARGIN,
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
    fig.update_layout(height=360, margin=_MARGIN, hovermode="x unified")
    return fig
