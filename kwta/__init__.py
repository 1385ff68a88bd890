"""k-WTA Explorer library: the k-Winners-Take-All defense of Xiao, Zhong, Zheng (ICLR 2020).

Public API (see README):

- activations: :func:`kwta.nn.functional.kwta`, :class:`KWTA`, :class:`LWTA`, :func:`create_act`,
  :func:`set_ratio`;
- data: :func:`kwta.data.cifar10`;
- weights: :func:`load_pretrained`, :func:`list_pretrained`;
- attacks and analyses: :mod:`kwta.attacks`, :mod:`kwta.analysis`.
"""

from __future__ import annotations

from kwta._version import __version__
from kwta.nn import functional
from kwta.nn.activations import KWTA, LWTA, ReLU, get_ratio, set_ratio
from kwta.nn.registry import create_act, register_act
from kwta.zoo.hub import WeightsError, list_pretrained, load_pretrained

__all__ = [
    "KWTA",
    "LWTA",
    "ReLU",
    "WeightsError",
    "__version__",
    "create_act",
    "functional",
    "get_ratio",
    "list_pretrained",
    "load_pretrained",
    "register_act",
    "set_ratio",
]
