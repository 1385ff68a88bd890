"""Clean and robust accuracy: the numbers on every model card.

- :mod:`~kwta.evaluation.clean`: batched prediction and clean accuracy;
- :mod:`~kwta.evaluation.robust`: the paper's attacks (Table 1) and PGD with restarts;
- :mod:`~kwta.evaluation.adaptive`: adaptive attacks and transfer from the ReLU twin;
- :mod:`~kwta.evaluation.report`: a text table, and results written into a card.
"""

from __future__ import annotations

from kwta.evaluation.adaptive import evaluate_adaptive
from kwta.evaluation.clean import clean_accuracy, predict
from kwta.evaluation.report import format_table, update_card
from kwta.evaluation.robust import evaluate

__all__ = [
    "clean_accuracy",
    "evaluate",
    "evaluate_adaptive",
    "format_table",
    "predict",
    "update_card",
]
