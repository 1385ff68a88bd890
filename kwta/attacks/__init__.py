"""Attacks under the paper's L∞ threat model (Sec. 4, App. D.1) and beyond it.

One family per module, all on pixels in [0, 1], keyword-only hyper-parameters,
the norm in the name, seeded by an optional ``generator``:

- :mod:`~kwta.attacks._core`: losses, projection, checks, input gradients, :class:`Trace`
  and :func:`traced` (any recording attack, returning ``(x_adv, trace)``);
- :mod:`~kwta.attacks.sign_gradient`: PGD, FGSM, MIM (Fig. 3a/b traces);
- :mod:`~kwta.attacks.min_norm`: Carlini-Wagner L2 and DeepFool;
- :mod:`~kwta.attacks.apgd`: Auto-PGD (CE, DLR); :mod:`~kwta.attacks.square`: the Square attack;
- :mod:`~kwta.attacks.estimated`: PGD on estimated gradients (finite differences, EOT);
- :mod:`~kwta.attacks.transfer`: transfer attacks (Table 3);
- :mod:`~kwta.attacks.registry`: every attack by name, one :class:`AttackSpec` each.
"""

from __future__ import annotations

from kwta.attacks._core import Trace, attack_loss, is_correct, robust_accuracy, traced
from kwta.attacks.apgd import apgd_linf
from kwta.attacks.estimated import eot_pgd_linf, fd_pgd_linf
from kwta.attacks.min_norm import cw_l2, deepfool_linf
from kwta.attacks.registry import (
    DEFAULT_ADAPTIVE,
    DEFAULT_STANDARD,
    AttackSpec,
    attack_names,
    get_attack,
    max_queries,
    run_attack,
)
from kwta.attacks.sign_gradient import fgsm_linf, mim_linf, pgd_linf
from kwta.attacks.square import square_linf
from kwta.attacks.transfer import transfer_attack, transfer_matrix

__all__ = [
    "DEFAULT_ADAPTIVE",
    "DEFAULT_STANDARD",
    "AttackSpec",
    "Trace",
    "apgd_linf",
    "attack_loss",
    "attack_names",
    "cw_l2",
    "deepfool_linf",
    "eot_pgd_linf",
    "fd_pgd_linf",
    "fgsm_linf",
    "get_attack",
    "is_correct",
    "max_queries",
    "mim_linf",
    "pgd_linf",
    "robust_accuracy",
    "run_attack",
    "square_linf",
    "traced",
    "transfer_attack",
    "transfer_matrix",
]
