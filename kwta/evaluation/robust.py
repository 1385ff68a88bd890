"""Robust accuracy under the paper's attacks (Table 1, App. D.1), the number
behind every card: each attack's examples checked to lie in the ε-ball, plus
PGD-40 with restarts (per-image worst case).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from kwta import paper
from kwta.attacks._core import is_correct
from kwta.attacks._steps import steps_ran_in
from kwta.attacks.registry import DEFAULT_STANDARD, attack_names, get_attack, run_attack
from kwta.data import CIFAR10Tensors, data_provenance
from kwta.evaluation.clean import clean_accuracy
from kwta.utils import default_device, device_name, seed_all

__all__ = [
    "A_ROB_DEFINITION",
    "evaluate",
    "pack_mask",
    "scored_attack",
    "unpack_mask",
]

log = logging.getLogger(__name__)


#: How A_rob is computed, for JSON outputs and cards.
A_ROB_DEFINITION = (
    "empirical worst case over attacks (Table 1, App. D.3): the smallest per-attack robust "
    "accuracy on the robust subset; A_rob_per_image (<= A_rob) counts the images classified "
    "correctly clean and after every attack"
)


def pack_mask(mask: Tensor) -> str:
    """A boolean per-image mask as a hex string (image ``i`` is bit ``i``, most significant first).

    Evaluations store which images survived each attack this way (``robust_mask``), so a
    later run can check its outcome image by image on any prefix of the subset.
    """
    bits = [bool(b) for b in mask.detach().to("cpu", torch.bool).flatten().tolist()]
    bits += [False] * (-len(bits) % 8)
    return bytes(
        sum(1 << (7 - j) for j, b in enumerate(bits[i : i + 8]) if b)
        for i in range(0, len(bits), 8)
    ).hex()


def unpack_mask(packed: str, n: int) -> Tensor:
    """The first ``n`` entries of a :func:`pack_mask` string, as a bool tensor.

    Raises:
        ValueError: ``packed`` is no hex string or holds fewer than ``n`` bits.
    """
    raw = bytes.fromhex(packed)
    if n < 0 or 8 * len(raw) < n:
        raise ValueError(f"the mask holds {8 * len(raw)} bits, {n} asked for")
    bits = [bool(byte >> (7 - j) & 1) for byte in raw for j in range(8)]
    return torch.tensor(bits[:n], dtype=torch.bool)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def _check_in_ball(name: str, x_adv: Tensor, x: Tensor, eps: float) -> float:
    """The largest ℓ∞ distance of ``x_adv`` from ``x``; raise if outside the ε-ball or [0, 1]."""
    dist = float((x_adv - x).abs().amax()) if len(x) else 0.0
    if (
        x_adv.shape != x.shape
        or dist > eps + 1e-5
        or (len(x) and (float(x_adv.min()) < 0 or float(x_adv.max()) > 1))
    ):
        raise RuntimeError(
            f"attack {name!r} returned points outside the ε = {eps} ball or [0, 1] "
            f"(max ℓ∞ distance {dist:.5f}); refusing to score them"
        )
    return dist


def _steps_precision(fn: Any, params: dict[str, Any], device: torch.device) -> str:
    if "precision" not in inspect.signature(fn).parameters:
        return "fp32"
    return steps_ran_in(str(params.get("precision", "auto")), device)


def scored_attack(
    name: str,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    ok_clean: Tensor,
    params: dict[str, Any],
    *,
    seed: int,
    batch_size: int,
    progress: bool,
    source: nn.Module | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """Run one attack (on ``source`` if given, i.e. a transfer) and score it on ``model``.

    Returns:
        ``(robust, entry)``: the per-image robust mask and the JSON-able entry
        (accuracy, robust count, n, settings, max ℓ∞ distance, seconds).
    """
    fn = get_attack(name).fn
    extra: dict[str, Any] = {}
    if "generator" in inspect.signature(fn).parameters:
        extra["generator"] = torch.Generator().manual_seed(seed)
    seed_all(seed)
    seen: list[int] = [0]
    bar = tqdm(desc=name, total=None, disable=not progress, leave=False, dynamic_ncols=True)

    def on_step(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.update(done - seen[0])
        seen[0] = done

    t0 = time.perf_counter()
    try:
        x_adv = run_attack(
            name,
            model if source is None else source,
            x,
            y,
            batch_size=batch_size,
            callback=on_step,
            **extra,
            **{k: v for k, v in params.items() if k not in extra},
        )
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    x_adv = x_adv.detach()
    dist = _check_in_ball(name, x_adv, x, float(params["eps"]))
    ok = ok_clean & is_correct(model, x_adv, y, batch_size=batch_size)
    entry = {
        "accuracy": int(ok.sum()) / len(y) if len(y) else 0.0,
        "robust": int(ok.sum()),
        "n": len(y),
        "settings": _jsonable(params),
        # what the attack's steps ran in ("auto" resolved); every verdict is fp32
        "steps_precision": _steps_precision(fn, params, x.device),
        "max_linf": dist,
        "seconds": round(seconds, 3),
        "robust_mask": pack_mask(ok),
    }
    log.info("%s: robust accuracy %.4f (%.1fs)", name, entry["accuracy"], seconds)
    return ok, entry


@dataclass(frozen=True, eq=False)
class AttackSubset:
    """The class-balanced images an evaluation attacks, on its device.

    Attributes:
        x: ``(n, 3, H, W)`` images in [0, 1].
        y: ``(n,)`` labels.
        ok_clean: ``(n,)`` bool: the model classifies the image correctly.
        record: What a card stores about the subset: ``n``, ``seed``, ``rule``,
            ``indices_sha256``, ``indices`` and ``clean_accuracy``.
    """

    x: Tensor
    y: Tensor
    ok_clean: Tensor
    record: dict[str, Any]


def attack_subset(
    model: nn.Module,
    data: CIFAR10Tensors,
    *,
    attacks: Sequence[str],
    group: Literal["standard", "adaptive"],
    n: int,
    eps: float,
    seed: int,
    batch_size: int,
    device: torch.device,
) -> AttackSubset:
    """Check an evaluation's request and draw its subset (what both evaluations share).

    Args:
        model: The evaluated model, in eval mode on ``device``.
        data: Test split.
        attacks: Requested attack names; each must be in ``group``
            (:func:`kwta.attacks.registry.attack_names`).
        group: ``"standard"`` or ``"adaptive"``.
        n: Subset size (capped at ``len(data)``).
        eps: ℓ∞ radius (≥ 0).
        seed: Seed of ``data.balanced_indices``.
        batch_size: Inference batch size.
        device: Where the images go.

    Raises:
        ValueError: Unknown attack, ``n < 1`` or ``eps < 0``.
    """
    known = attack_names(group)
    unknown = [a for a in attacks if a not in known]
    if unknown:
        kind = "" if group == "standard" else f"{group} "
        raise ValueError(f"unknown {kind}attack(s) {unknown}; choose from {known}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    idx = [int(i) for i in data.balanced_indices(min(n, len(data)), seed=seed)]
    x, y = data.tensors(idx, device=device)
    ok_clean = is_correct(model, x, y, batch_size=batch_size)
    record = {
        "n": len(idx),
        "seed": seed,
        "rule": f"CIFAR10Tensors.balanced_indices({n}, seed={seed}) of the test split",
        "indices_sha256": hashlib.sha256(json.dumps(idx).encode()).hexdigest(),
        "indices": idx,
        "clean_accuracy": int(ok_clean.sum()) / len(idx),
    }
    return AttackSubset(x, y, ok_clean, record)


def _pgd_restarts(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    ok_clean: Tensor,
    first: dict[str, Any] | None,
    *,
    restarts: int,
    eps: float,
    overrides: dict[str, Any],
    seed: int,
    batch_size: int,
    progress: bool,
) -> dict[str, Any]:
    """PGD from several random starts; an image is robust only if it survives every start."""
    params = get_attack("pgd").settings(eps=eps, **overrides)
    robust = ok_clean.clone()
    per_start: list[float] = []
    seeds: list[int] = []
    seconds = 0.0
    if first is not None:  # the seeded single start of the standard evaluation, reproduced
        ok, _ = scored_attack(
            "pgd", model, x, y, ok_clean, params, seed=seed, batch_size=batch_size, progress=False
        )
        robust &= ok
        per_start.append(first["accuracy"])
        seeds.append(seed)
    for r in range(1, restarts + 1):
        ok, entry = scored_attack(
            "pgd",
            model,
            x,
            y,
            ok_clean,
            params,
            seed=seed + r,
            batch_size=batch_size,
            progress=progress,
        )
        robust &= ok
        per_start.append(entry["accuracy"])
        seeds.append(seed + r)
        seconds += entry["seconds"]
    return {
        "starts": len(per_start),
        "accuracy": int(robust.sum()) / len(y) if len(y) else 0.0,
        "robust": int(robust.sum()),
        "n": len(y),
        "per_start_accuracy": per_start,
        "seeds": seeds,
        "settings": _jsonable(params),
        "definition": (
            "per-image worst case over the starts: an image counts as robust only if PGD "
            "from every start leaves it correctly classified"
        ),
        "seconds": round(seconds, 3),
    }


def evaluate(
    model: nn.Module,
    data: CIFAR10Tensors,
    *,
    attacks: Sequence[str] = DEFAULT_STANDARD,
    n: int = 1000,
    clean_n: int | None = None,
    batch_size: int = 256,
    eps: float = paper.EPS,
    seed: int = 0,
    device: torch.device | str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    callback: Callable[[str, dict[str, Any]], None] | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    """Clean accuracy, robust accuracy per attack and A_rob (Table 1, App. D.1).

    Args:
        model: Classifier taking pixels in [0, 1] (put in eval mode here).
        data: Test split, e.g. ``kwta.data.cifar10("test", root)``.
        attacks: Standard attack names (:func:`kwta.attacks.registry.attack_names`),
            run with their registered (App. D.1) settings.
        n: Size of the class-balanced robust-evaluation subset
            (``data.balanced_indices(n, seed=seed)``).
        clean_n: Images for the clean accuracy (``None``: all of ``data``;
            otherwise ``data.balanced_indices(clean_n, seed=seed)``).
        batch_size: Batch size of attacks and inference.
        eps: ℓ∞ radius (0.031, App. D.1), passed to every attack.
        seed: Seed of the subsets and of the attacks' random starts (each
            attack starts from the same seed; the global RNGs are seeded too).
        device: Where to run (default: CUDA when present).
        overrides: Per-attack hyper-parameters replacing the paper's, e.g.
            ``{"pgd": {"steps": 100}}``.
        progress: Show a tqdm bar per attack.
        callback: ``callback(attack, partial_result)`` after each attack.
        restarts: Extra random starts of PGD (seeds ``seed+1 … seed+restarts``);
            ``pgd_restarts`` then holds the per-image worst case over these and
            the single start of ``attacks`` (or the ``restarts`` starts alone
            when ``"pgd"`` is not among them). On k-WTA one start moves robust
            accuracy by a few images in 200; the paper reports one start.

    Returns:
        A JSON-able dict: ``clean`` (accuracy, correct, n), ``subset`` (n,
        seed, rule, indices and their sha256, clean accuracy on it),
        ``attacks`` (per attack: accuracy, robust count, settings, max ℓ∞
        distance, seconds), ``A_rob``, ``A_rob_definition``,
        ``min_over_attacks``, ``worst_attack``, ``eps``, ``data`` (source,
        JPEG-copy flag, note), ``device``, ``device_name``, ``date``.

    Raises:
        ValueError: Unknown attack, bad ``n``/``clean_n``/``eps``.
        RuntimeError: An attack returned points outside the ε-ball or [0, 1].
    """
    if clean_n is not None and clean_n < 1:
        raise ValueError(f"clean_n must be >= 1, got {clean_n}")
    overrides = overrides or {}
    dev = default_device(device)
    model = model.to(dev).eval()

    sub = attack_subset(
        model,
        data,
        attacks=attacks,
        group="standard",
        n=n,
        eps=eps,
        seed=seed,
        batch_size=batch_size,
        device=dev,
    )
    x, y, ok_clean = sub.x, sub.y, sub.ok_clean

    clean_idx = (
        None
        if clean_n is None or clean_n >= len(data)
        else data.balanced_indices(clean_n, seed=seed)
    )
    n_clean = len(data) if clean_idx is None else len(clean_idx)
    t0 = time.perf_counter()
    acc_clean = clean_accuracy(model, data, indices=clean_idx, batch_size=batch_size, device=dev)
    log.info(
        "clean accuracy %.4f on %d images (%.1fs)", acc_clean, n_clean, time.perf_counter() - t0
    )

    result: dict[str, Any] = {
        "clean": {
            "accuracy": acc_clean,
            "correct": round(acc_clean * n_clean),
            "n": n_clean,
            "rule": "all" if clean_idx is None else f"balanced_indices({clean_n}, seed={seed})",
        },
        "subset": sub.record,
        "attacks": {},
        "eps": eps,
        "A_rob": None,
        "A_rob_per_image": None,
        "A_rob_definition": A_ROB_DEFINITION,
        "min_over_attacks": None,
        "worst_attack": None,
        "data": data_provenance(data.source) | {"split": data.split, "size": len(data)},
        "device": str(dev),
        "device_name": device_name(dev),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
    }
    robust_all = ok_clean.clone()
    for name in attacks:
        params = get_attack(name).settings(eps=eps, **overrides.get(name, {}))
        ok, entry = scored_attack(
            name, model, x, y, ok_clean, params, seed=seed, batch_size=batch_size, progress=progress
        )
        robust_all &= ok
        result["attacks"][name] = entry
        if callback is not None:
            callback(name, result)
    if restarts > 0:
        result["pgd_restarts"] = _pgd_restarts(
            model,
            x,
            y,
            ok_clean,
            result["attacks"].get("pgd"),
            restarts=restarts,
            eps=eps,
            overrides=overrides.get("pgd", {}),
            seed=seed,
            batch_size=batch_size,
            progress=progress,
        )
        if callback is not None:
            callback("pgd_restarts", result)
    if attacks:
        accs = {k: v["accuracy"] for k, v in result["attacks"].items()}
        worst = min(accs, key=lambda k: accs[k])
        result.update(
            A_rob=accs[worst],
            A_rob_per_image=int(robust_all.sum()) / len(y),
            min_over_attacks=accs[worst],
            worst_attack=worst,
        )
    return result
