"""Plotly figures of the k-WTA Explorer: data in, ``go.Figure`` out, nothing computed here.

Every chart is interactive (hover, zoom, legend toggles); class colours are the same in
every chart (:mod:`figures.style`). One module per topic — :mod:`figures.attack`,
:mod:`figures.landscape`, :mod:`figures.patterns`, :mod:`figures.path`, :mod:`figures.demos`,
:mod:`figures.zoo`
— and the pages call ``figures.<builder>``.
"""

from figures.attack import logit_trace_figure, margin_figure, probs_figure
from figures.demos import activation_demo_figure, toy_fit_figure
from figures.landscape import landscape_heatmap, landscape_surface, weight_line_figure
from figures.path import path_heatmap, path_surface, step_logits_figure
from figures.patterns import overlap_figure, pattern_change_figure, theorem1_figure, winner_heatmap
from figures.style import CLASS_COLORS, KWTA_COLOR, RELU_COLOR
from figures.zoo import gamma_sweep_figure, robustness_bars, zoo_figure

__all__ = [
    "CLASS_COLORS",
    "KWTA_COLOR",
    "RELU_COLOR",
    "activation_demo_figure",
    "gamma_sweep_figure",
    "landscape_heatmap",
    "landscape_surface",
    "logit_trace_figure",
    "margin_figure",
    "overlap_figure",
    "path_heatmap",
    "path_surface",
    "pattern_change_figure",
    "probs_figure",
    "robustness_bars",
    "step_logits_figure",
    "theorem1_figure",
    "toy_fit_figure",
    "weight_line_figure",
    "winner_heatmap",
    "zoo_figure",
]
