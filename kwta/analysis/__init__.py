"""The experiments behind the paper's figures and theorems, and a masking check.

- :mod:`~kwta.analysis.landscape`: the loss landscape around one image (Fig. 5, Fig. 7);
- :mod:`~kwta.analysis.attack_plane`: the loss on the plane that holds PGD's walk, and the
  walk drawn on it (beyond the paper);
- :mod:`~kwta.analysis.toy`: the 1-D toy fit and its jumps (Fig. 1);
- :mod:`~kwta.analysis.patterns`: activation patterns, their change and overlap (Sec. 3);
- :mod:`~kwta.analysis.theorem1`: Theorem 1 as a function of layer width;
- :mod:`~kwta.analysis.weights`: the loss along weight space (Fig. 3c) and the γ sweep (Fig. 4);
- :mod:`~kwta.analysis.masking`: gradient-masking indicators (beyond the paper).

Every function leaves the model it is given as it was.
"""

from __future__ import annotations

from kwta.analysis.attack_plane import AttackPlane, attack_plane
from kwta.analysis.landscape import Landscape, loss_landscape
from kwta.analysis.masking import MaskingReport, masking_indicators
from kwta.analysis.patterns import (
    PatternChange,
    activation_patterns,
    overlap_summary,
    pattern_change,
    pattern_overlap,
)
from kwta.analysis.theorem1 import Theorem1Sweep, theorem1_width_sweep
from kwta.analysis.toy import Jumps, ToyFit, toy_fit
from kwta.analysis.weights import GammaSweep, WeightLine, gamma_sweep, weight_line

__all__ = [
    "AttackPlane",
    "GammaSweep",
    "Jumps",
    "Landscape",
    "MaskingReport",
    "PatternChange",
    "Theorem1Sweep",
    "ToyFit",
    "WeightLine",
    "activation_patterns",
    "attack_plane",
    "gamma_sweep",
    "loss_landscape",
    "masking_indicators",
    "overlap_summary",
    "pattern_change",
    "pattern_overlap",
    "theorem1_width_sweep",
    "toy_fit",
    "weight_line",
]
