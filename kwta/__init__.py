"""k-WTA Explorer library: the k-Winners-Take-All defense of Xiao, Zhong, Zheng (ICLR 2020).

Public API (see README):

- activations: :func:`kwta.functional.kwta`, :class:`KWTA`, :class:`LWTA`, :func:`create_act`,
  :func:`set_ratio`;
- data: :func:`kwta.data.cifar10`;
- weights: :func:`load_pretrained`, :func:`list_pretrained`;
- attacks and analyses: :mod:`kwta.attacks`, :mod:`kwta.analysis`.
"""

from __future__ import annotations

from . import functional
from .activations import KWTA, LWTA, ReLU, create_act, get_ratio, register_act, set_ratio
from .hub import WeightsError, list_pretrained, load_pretrained

__version__ = "0.1.0"

__all__ = [
    "KWTA",
    "LWTA",
    "ReLU",
    "WeightsError",
    "create_act",
    "functional",
    "get_ratio",
    "list_pretrained",
    "load_pretrained",
    "register_act",
    "set_ratio",
]
