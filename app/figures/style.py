"""The figures' shared style: one colour per CIFAR-10 class in every chart, k-WTA and ReLU
colours, margins."""

from __future__ import annotations

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

MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
