"""The paper's Table 3 on the zoo: PGD examples of each model, tried on every other one.

App. D.3: a ReLU and a k-WTA-0.1 ResNet-18, each naturally and adversarially
trained; PGD adversarial examples crafted on each *source* are classified by each
*target*. The paper finds k-WTA models harder to attack by transfer and their
examples worse at transferring ("disjoint" adversarial examples). Its diagonal uses
a second, independently trained copy of each model; the zoo has one copy of each,
so our diagonal is the white-box PGD result (said wherever it is shown).

``python -m kwta transfer`` computes the matrix on class-balanced test images and
writes ``transfer.json`` beside the models (:func:`write_transfer`); the Model zoo
page shows it beside the paper's numbers when it matches the shipped weights
(:func:`read_transfer`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from kwta.attacks._core import is_correct
from kwta.attacks.registry import get_attack
from kwta.attacks.transfer import transfer_matrix
from kwta.data import CIFAR10Tensors, portable_source
from kwta.zoo.published import PAPER_TABLE3, TABLE3_ROLES
from kwta.zoo.results import model_refs, read_results, write_results

__all__ = [
    "TRANSFER_FILE",
    "TRANSFER_FORMAT",
    "TRANSFER_IMAGES",
    "compute_transfer",
    "read_transfer",
    "write_transfer",
]

TRANSFER_FILE = "transfer.json"
TRANSFER_FORMAT = 1
#: Class-balanced test images attacked by default.
TRANSFER_IMAGES = 500
#: The attack: the paper's PGD (App. D.1 settings, random start), seeded per source.
TRANSFER_ATTACK = "pgd"


def compute_transfer(
    cards: Mapping[str, Mapping[str, Any]],
    models: Mapping[str, nn.Module],
    data: CIFAR10Tensors,
    *,
    n: int = TRANSFER_IMAGES,
    seed: int = 0,
    batch_size: int = 250,
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Table 3 on the given models.

    Args:
        cards: ``{role: card}`` with roles from :data:`kwta.zoo.published.TABLE3_ROLES`
            (any subset of at least two).
        models: The same roles → models in eval mode (one device).
        data: Test images; ``n`` class-balanced ones are attacked (subset seed 0).
        n: Images to attack.
        seed: Seed of each source's random start.
        batch_size: Images per attack batch.
        callback: ``callback(done, total)`` after each source model.

    Returns:
        A JSON-ready dict: ``format``, ``models`` (role → name, sha256), ``roles``,
        ``labels`` (the paper's names), ``attack`` and its settings, ``n``, ``indices``
        and their sha256, ``data`` (source), ``clean`` (role → accuracy on the images),
        ``matrix`` (target → source → robust accuracy), ``paper`` (Table 3 for these
        roles), ``diagonal`` (what ours means), ``device``, ``seconds``.

    Raises:
        ValueError: Unknown roles, fewer than two, or roles without a model.
    """
    roles = [r for r in TABLE3_ROLES if r in cards]
    unknown = set(cards) - set(TABLE3_ROLES)
    if unknown or len(roles) < 2 or set(models) != set(cards):
        raise ValueError(
            f"need models for at least two of {list(TABLE3_ROLES)} (cards and models alike); "
            f"got cards {sorted(cards)}, models {sorted(models)}"
        )
    start = time.perf_counter()
    indices = [int(i) for i in data.balanced_indices(min(n, len(data)), seed=0)]
    device = next(models[roles[0]].parameters()).device
    x, y = data.tensors(indices, device=device)
    ordered = {r: models[r] for r in roles}
    clean = {
        r: float(is_correct(m, x, y, batch_size=batch_size).double().mean())
        for r, m in ordered.items()
    }
    matrix = transfer_matrix(
        ordered, x, y, attack=TRANSFER_ATTACK, seed=seed, batch_size=batch_size, callback=callback
    )
    idx_bytes = ",".join(map(str, indices)).encode()
    return {
        "format": TRANSFER_FORMAT,
        "models": model_refs({r: cards[r] for r in roles}),
        "roles": roles,
        "labels": {r: TABLE3_ROLES[r] for r in roles},
        "attack": TRANSFER_ATTACK,
        "settings": dict(get_attack(TRANSFER_ATTACK).defaults) | {"seed": seed},
        "n": len(indices),
        "indices": indices,
        "indices_sha256": hashlib.sha256(idx_bytes).hexdigest(),
        "data": portable_source(data.source),
        "clean": clean,
        "matrix": matrix,
        "paper": {t: {s: PAPER_TABLE3[t][s] for s in roles} for t in roles},
        "diagonal": "white-box: examples crafted on the target itself (the zoo has one copy "
        "of each model; the paper's diagonal uses a second, independently trained copy)",
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 2),
    }


def write_transfer(results: Mapping[str, Any], directory: str | os.PathLike[str]) -> Path:
    """Write the results as ``<directory>/transfer.json`` (atomically); return the path."""
    return write_results(results, directory, TRANSFER_FILE)


def read_transfer(
    directory: str | os.PathLike[str], cards: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The transfer results in ``directory`` if computed on exactly these ``{role: card}``.

    Returns:
        The results, or ``None`` (missing, unreadable, another format or other weights).
    """
    return read_results(directory, TRANSFER_FILE, TRANSFER_FORMAT, cards)
