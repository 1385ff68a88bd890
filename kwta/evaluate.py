"""Clean and robust accuracy the way the paper's Table 1 reports them (Sec. 4, App. D.1).

- **Clean accuracy** ``A_std``: on the whole test split (or a class-balanced,
  seeded subset of it).
- **Robust accuracy** per attack: every attack of :data:`kwta.attacks.ATTACKS`
  with the paper's App. D.1 settings (:data:`kwta.attacks.PAPER_SETTINGS`,
  ε = 0.031 unless overridden) on a fixed, class-balanced, seeded subset of
  ``n`` test images (:meth:`kwta.data.CIFAR10Tensors.balanced_indices`). An
  image counts as robust against an attack when the model classifies both the
  clean image and the attack's output correctly (an image that is already
  misclassified is broken by δ = 0), as in Foolbox and RobustBench.
- **A_rob**, the paper's "empirical worst-case robustness among different
  attacks": the smallest per-attack robust accuracy ("the most effective
  attack", App. D.3; in Table 1 every A_rob is the minimum of its row), also
  stored as ``min_over_attacks`` with the ``worst_attack``.
- **A_rob_per_image**, stricter: the fraction of the subset that survives
  *every* attack evaluated, per image. It is at most A_rob; the two coincide
  when the strongest attack breaks a superset of what the others break.

Every attack output is checked to lie in the ε-ball and in [0, 1] before it is
scored, so a faulty attack cannot inflate or deflate the numbers silently.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data import CIFAR10Tensors
from .hub import WeightsError, load_card, sha256_of
from .utils import batches, default_device, seed_all

__all__ = [
    "A_ROB_DEFINITION",
    "DEFAULT_ATTACKS",
    "clean_accuracy",
    "evaluate",
    "format_table",
    "update_card",
]

log = logging.getLogger(__name__)

#: The white-box attacks of Table 1 (the black-box column is not reproduced here).
DEFAULT_ATTACKS: tuple[str, ...] = ("pgd", "mim", "cw", "deepfool")

#: How A_rob is computed, for JSON outputs and cards.
A_ROB_DEFINITION = (
    "empirical worst case over attacks (Table 1, App. D.3): the smallest per-attack robust "
    "accuracy on the robust subset; A_rob_per_image (<= A_rob) counts the images classified "
    "correctly clean and after every attack"
)


def _correct(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
    """``(N,)`` bool: arg-max equals the label, computed in batches without gradients."""
    out = torch.zeros(len(y), dtype=torch.bool, device=y.device)
    with torch.no_grad():
        for sl in batches(len(y), batch_size):
            out[sl] = model(x[sl]).argmax(dim=1) == y[sl]
    return out


def clean_accuracy(
    model: nn.Module,
    data: CIFAR10Tensors,
    *,
    indices: Tensor | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> float:
    """Standard accuracy ``A_std`` of ``model`` on ``data`` (or the given indices of it).

    The images are moved to ``device`` batch by batch (uint8), so the whole test
    split never needs to fit there as floats. The model is put in eval mode.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    idx = indices if indices is not None else torch.arange(len(data))
    if len(idx) == 0:
        return 0.0
    correct = 0
    with torch.no_grad():
        for sl in batches(len(idx), batch_size):
            x, y = data.tensors(idx[sl], device=dev)
            correct += int((model(x).argmax(dim=1) == y).sum())
    return correct / len(idx)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


def evaluate(
    model: nn.Module,
    data: CIFAR10Tensors,
    *,
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    n: int = 1000,
    clean_n: int | None = None,
    batch_size: int = 256,
    eps: float = 0.031,
    seed: int = 0,
    device: torch.device | str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    callback: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Clean accuracy, robust accuracy per attack and A_rob (Table 1, App. D.1).

    Args:
        model: Classifier taking pixels in [0, 1] (put in eval mode here).
        data: Test split, e.g. ``kwta.data.cifar10("test", root)``.
        attacks: Names in :data:`kwta.attacks.ATTACKS`, run with
            :data:`kwta.attacks.PAPER_SETTINGS`.
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
    from .attacks import ATTACKS, PAPER_SETTINGS, run_attack
    from .train import data_provenance, device_name

    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}; choose from {sorted(ATTACKS)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if clean_n is not None and clean_n < 1:
        raise ValueError(f"clean_n must be >= 1, got {clean_n}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    overrides = overrides or {}
    dev = default_device(device)
    model = model.to(dev).eval()

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

    idx = data.balanced_indices(n, seed=seed)
    x, y = data.tensors(idx, device=dev)
    ok_clean = _correct(model, x, y, batch_size)
    idx_list = [int(i) for i in idx]
    result: dict[str, Any] = {
        "clean": {
            "accuracy": acc_clean,
            "correct": round(acc_clean * n_clean),
            "n": n_clean,
            "rule": "all" if clean_idx is None else f"balanced_indices({clean_n}, seed={seed})",
        },
        "subset": {
            "n": len(idx_list),
            "seed": seed,
            "rule": f"CIFAR10Tensors.balanced_indices({n}, seed={seed}) of the test split",
            "indices_sha256": hashlib.sha256(json.dumps(idx_list).encode()).hexdigest(),
            "indices": idx_list,
            "clean_accuracy": int(ok_clean.sum()) / len(idx_list),
        },
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
        params = {**PAPER_SETTINGS[name], "eps": eps, **overrides.get(name, {})}
        extra: dict[str, Any] = {}
        if "generator" in inspect.signature(ATTACKS[name]).parameters:
            extra["generator"] = torch.Generator().manual_seed(seed)
        seed_all(seed)
        total_steps: list[int] = [0]
        bar = tqdm(desc=name, total=None, disable=not progress, leave=False, dynamic_ncols=True)

        def on_step(done: int, total: int, _bar: Any = bar, _seen: list[int] = total_steps) -> None:
            if _bar.total != total:
                _bar.total = total
            _bar.update(done - _seen[0])
            _seen[0] = done

        t0 = time.perf_counter()
        try:
            x_adv = run_attack(
                name,
                model,
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
        dist = float((x_adv - x).abs().amax()) if len(x) else 0.0
        if (
            x_adv.shape != x.shape
            or dist > eps + 1e-5
            or float(x_adv.min()) < 0
            or float(x_adv.max()) > 1
        ):
            raise RuntimeError(
                f"attack {name!r} returned points outside the ε = {eps} ball or [0, 1] "
                f"(max ℓ∞ distance {dist:.5f}); refusing to score them"
            )
        ok = ok_clean & _correct(model, x_adv, y, batch_size)
        robust_all &= ok
        result["attacks"][name] = {
            "accuracy": int(ok.sum()) / len(y),
            "robust": int(ok.sum()),
            "n": len(y),
            "settings": _jsonable(params),
            "max_linf": dist,
            "seconds": round(seconds, 3),
        }
        log.info(
            "%s: robust accuracy %.4f (%.1fs)", name, result["attacks"][name]["accuracy"], seconds
        )
        if callback is not None:
            callback(name, result)
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


def format_table(result: dict[str, Any], title: str | None = None) -> str:
    """A plain-text table of :func:`evaluate`'s result (what the CLI prints)."""
    lines = []
    if title:
        lines.append(title)
    data = result.get("data", {})
    if data:
        lines.append(
            f"data: {data.get('source')}" + (" (JPEG copy)" if data.get("jpeg_copy") else "")
        )
    lines.append(
        f"device: {result.get('device_name', result.get('device'))}; eps = {result.get('eps')}"
    )
    lines.append(f"{'metric':<28}{'accuracy':>10}{'images':>9}")
    lines.append("-" * 47)
    clean = result["clean"]
    lines.append(f"{'clean (A_std)':<28}{clean['accuracy']:>10.2%}{clean['n']:>9}")
    sub = result["subset"]
    lines.append(f"{'clean, robust subset':<28}{sub['clean_accuracy']:>10.2%}{sub['n']:>9}")
    for name, r in result["attacks"].items():
        lines.append(f"{name:<28}{r['accuracy']:>10.2%}{r['n']:>9}")
    if result.get("A_rob") is not None:
        lines.append("-" * 47)
        lines.append(
            f"{'A_rob (worst attack: ' + str(result['worst_attack']) + ')':<28}"
            f"{result['A_rob']:>10.2%}{sub['n']:>9}"
        )
        lines.append(
            f"{'per image, every attack':<28}{result['A_rob_per_image']:>10.2%}{sub['n']:>9}"
        )
    return "\n".join(lines) + "\n"


def update_card(
    card_path: str | os.PathLike[str],
    result: dict[str, Any],
    *,
    command: str | None = None,
) -> dict[str, Any]:
    """Write :func:`evaluate`'s metrics into a model card, leaving the weights untouched.

    ``metrics`` gains ``clean_accuracy``, ``clean_n``, ``robust_accuracy``
    (per attack), ``A_rob``, ``robust_n`` and ``eps``; ``evaluation`` holds the
    details (subset rule and indices' sha256, attack settings, data source,
    device, date, command). Only the JSON card is rewritten (atomically); the
    weights file and the card's ``weights``/``sha256`` fields are not changed,
    and the weights' sha256 is checked before and after.

    Returns:
        The card as written.

    Raises:
        WeightsError: The card is unreadable or its weights do not match it.
    """
    path = Path(card_path)
    card = load_card(path)
    weights = path.parent / Path(card["weights"]).name
    if not weights.is_file() or sha256_of(weights) != card["sha256"]:
        raise WeightsError(f"{weights} is missing or does not match {path.name}; not updating it")
    metrics = dict(card.get("metrics") or {})
    metrics.update(
        clean_accuracy=result["clean"]["accuracy"],
        clean_n=result["clean"]["n"],
        robust_accuracy={k: v["accuracy"] for k, v in result["attacks"].items()},
        A_rob=result.get("A_rob"),
        A_rob_per_image=result.get("A_rob_per_image"),
        worst_attack=result.get("worst_attack"),
        robust_n=result["subset"]["n"],
        eps=result.get("eps"),
    )
    card["metrics"] = metrics
    card["evaluation"] = {
        "clean": result["clean"],
        "subset": {k: v for k, v in result["subset"].items() if k != "indices"},
        "attacks": result["attacks"],
        "A_rob": result.get("A_rob"),
        "A_rob_per_image": result.get("A_rob_per_image"),
        "A_rob_definition": result.get("A_rob_definition", A_ROB_DEFINITION),
        "min_over_attacks": result.get("min_over_attacks"),
        "worst_attack": result.get("worst_attack"),
        "eps": result.get("eps"),
        "data": result.get("data"),
        "device": result.get("device"),
        "device_name": result.get("device_name"),
        "date": result.get("date"),
        "command": command,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, path)
    if (
        sha256_of(weights) != card["sha256"]
    ):  # pragma: no cover - we never open the weights for writing
        raise WeightsError(f"{weights} changed while its card was updated")
    return card
