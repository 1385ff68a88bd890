"""Neural-network building blocks: the k-WTA activation and its relatives.

- :mod:`~kwta.nn.functional`: ``kwta`` / ``lwta`` and their masks, exactly k winners
  with the tie rule of Sec. 2.1 (a compiled CPU kernel when available, :mod:`~kwta.nn.native`);
- :mod:`~kwta.nn.activations`: thin ``nn.Module`` wrappers (:class:`KWTA`, :class:`LWTA`,
  :class:`ReLU`) and :func:`set_ratio` / :func:`get_ratio` for a whole network;
- :mod:`~kwta.nn.registry`: activations by name or class (:func:`create_act`);
- :mod:`~kwta.nn.precision`: the fast path (bf16 autocast, channels-last).
"""

from __future__ import annotations

from kwta.nn.activations import KWTA, LWTA, ReLU, get_ratio, set_ratio
from kwta.nn.functional import check_ratio, k_from_ratio, kwta, kwta_mask, lwta, lwta_mask
from kwta.nn.registry import create_act, get_act, register_act, registered_acts

__all__ = [
    "KWTA",
    "LWTA",
    "ReLU",
    "check_ratio",
    "create_act",
    "get_act",
    "get_ratio",
    "k_from_ratio",
    "kwta",
    "kwta_mask",
    "lwta",
    "lwta_mask",
    "register_act",
    "registered_acts",
    "set_ratio",
]
