"""Training the paper's networks (Sec. 2.2, App. D.1) and rebuilding the zoo.

- :mod:`~kwta.training.config`: :class:`TrainConfig` and the training methods;
- :mod:`~kwta.training.schedules`: step, one-cycle and incremental-γ schedules;
- :mod:`~kwta.training.epoch`: one epoch of every method (natural, PGD-AT, TRADES, free, FGSM);
- :mod:`~kwta.training.checkpoints`: per-epoch checkpoints (safetensors) for resuming;
- :mod:`~kwta.training.loop`: :func:`train`, the whole run;
- :mod:`~kwta.training.zoo`: the zoo's recipes and the command that rebuilds it;
- :mod:`~kwta.training.sweep`: Fig. 4, γ lowered step by step with fine-tuning.
"""

from __future__ import annotations

from kwta.training.config import METHODS, TrainConfig
from kwta.training.loop import train
from kwta.training.zoo import ZOO, ZooRecipe, build

__all__ = [
    "METHODS",
    "ZOO",
    "TrainConfig",
    "ZooRecipe",
    "build",
    "train",
]
