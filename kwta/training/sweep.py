"""Fig. 4 by training: clean and robust accuracy as γ falls under incremental fine-tuning.

Sec. 4.2: "starting from γ = 0.2, we decrease γ using incremental fine-tuning" and
evaluate clean accuracy and 20-iteration PGD at each γ; when γ falls below about
0.1 both accuracies drop, and the robust accuracy peaks on the way. One
incremental run passes through every γ on its way down, so :func:`ratio_sweep`
walks down from a trained k-WTA model one step at a time — each step a short
training run (:func:`kwta.training.loop.train`) that starts from the previous
step's weights — and evaluates a snapshot at each γ. Every step's weights, card
and evaluation stay in ``work``, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from kwta import paper
from kwta.attacks._core import robust_accuracy
from kwta.attacks.registry import run_attack
from kwta.data import CIFAR10Tensors
from kwta.evaluation.clean import clean_accuracy
from kwta.training.config import TrainConfig
from kwta.training.loop import train
from kwta.utils import default_device, device_name
from kwta.zoo.hub import load_from_card, sha256_of
from kwta.zoo.results import model_refs, read_results, write_results

__all__ = [
    "SWEEP_FILE",
    "SWEEP_FORMAT",
    "SWEEP_PGD",
    "publish_sweep",
    "ratio_sweep",
    "read_sweep",
    "sweep_device_note",
    "sweep_ratios",
]

log = logging.getLogger(__name__)

#: Sec. 4.2's attack for Fig. 4: PGD with 20 iterations (step 0.003, random start).
SWEEP_PGD: dict[str, Any] = {"eps": paper.EPS, "steps": 20}

#: The published sweep, beside the models (a results file of :mod:`kwta.zoo.results`).
SWEEP_FILE = "sweep.json"
SWEEP_FORMAT = 1


def sweep_ratios(start: float, stop: float, delta: float) -> list[float]:
    """``start − δ, start − 2δ, …`` down to ``stop`` (included when it is on the grid), rounded
    to 6 digits so that ratios compare and print cleanly.

    Raises:
        ValueError: ``delta <= 0`` or ``stop`` not below ``start`` or outside (0, 1].
    """
    if not delta > 0 or not 0 < stop < start <= 1:
        raise ValueError(f"need 0 < stop < start <= 1 and delta > 0, got {start}, {stop}, {delta}")
    out: list[float] = []
    k = 1
    while start - k * delta >= stop - 1e-9:
        out.append(round(start - k * delta, 6))
        k += 1
    return out


def ratio_sweep(
    start_card: str | os.PathLike[str],
    ratios: Sequence[float],
    *,
    train_data: CIFAR10Tensors,
    test_data: CIFAR10Tensors,
    work: str | os.PathLike[str],
    passes: int = 2,
    lr: float = 0.01,
    eval_n: int = 1000,
    robust_n: int = 500,
    subset: int | None = None,
    device: str | None = None,
    seed: int = 0,
    callback: Callable[[Mapping[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Lower γ step by step from a trained k-WTA model, fine-tuning and evaluating each step.

    Args:
        start_card: Card of the k-WTA model to start from (its γ is the first point).
        ratios: The γ of each step, descending (e.g. :func:`sweep_ratios`).
        train_data: Training images for the fine-tuning.
        test_data: Test images for the evaluation.
        work: Folder for each step's weights, card and checkpoint, and ``sweep.json``.
        passes: Fine-tuning passes per step (the paper: 2 epochs per δ = 0.005).
        lr: Peak learning rate of each step's one-cycle schedule.
        eval_n: Class-balanced test images for the clean accuracy.
        robust_n: Class-balanced test images for PGD-20 (:data:`SWEEP_PGD`).
        subset: Fine-tune on a class-balanced subset (smoke runs).
        device: Training and evaluation device (default: CUDA when present).
        seed: Seed of the fine-tuning and of the attack's random start.
        callback: Called with each point as it is measured.

    Returns:
        ``{"start": name, "points": [{"ratio", "clean_accuracy", "clean_n",
        "robust_accuracy", "robust_n", "sha256", "train_seconds", "eval_seconds"}, …],
        "settings": {...}}`` — also written to ``work/sweep.json`` after every point.

    Raises:
        ValueError: The start model has no k-WTA layers, or ``ratios`` do not descend
            below its γ.
    """
    out = Path(work)
    out.mkdir(parents=True, exist_ok=True)
    card_path = Path(start_card)
    card = json.loads(card_path.read_text())
    kw = card["arch_kwargs"]
    if kw.get("act") != "kwta":
        raise ValueError(f"{card['name']} has no k-WTA layers; the sweep lowers γ")
    gamma0 = float(kw.get("act_kwargs", {}).get("ratio", 0.1))
    steps = [float(r) for r in ratios]
    if not steps or any(b >= a for a, b in zip([gamma0, *steps], steps, strict=False)):
        raise ValueError(f"ratios must descend from the start model's γ = {gamma0}: {steps}")
    results_path = out / "sweep.json"
    # where it runs; on CUDA default_device also makes fp32 IEEE fp32 (exact_cuda_math)
    run_device = default_device(device)
    settings = {
        "passes": passes,
        "lr": lr,
        "eval_n": eval_n,
        "robust_n": robust_n,
        "subset": subset,
        "seed": seed,
        "pgd": SWEEP_PGD,
        "start_sha256": card["sha256"],
        # points measured elsewhere (another device, TF32) are not reused on resume
        "device": {"type": run_device.type, "fp32": "ieee"},
    }
    done: dict[float, dict[str, Any]] = {}
    if results_path.is_file():
        old = json.loads(results_path.read_text())
        if old.get("settings") == settings:  # the same sweep: keep what it measured
            done = {float(p["ratio"]): p for p in old["points"]}
    result: dict[str, Any] = {"start": card["name"], "settings": settings, "points": []}
    result["device"] = {**settings["device"], "name": device_name(run_device)}
    n_clean = min(eval_n, len(test_data))
    clean_idx = test_data.balanced_indices(n_clean, seed=0)
    n_rob = min(robust_n, len(test_data))
    x_r, y_r = test_data.tensors(test_data.balanced_indices(n_rob, seed=0))

    def measure(path: Path, ratio: float, train_s: float) -> dict[str, Any]:
        sha = sha256_of(path.with_suffix(".safetensors"))
        if ratio in done and done[ratio]["sha256"] == sha:
            return done[ratio]
        t0 = time.perf_counter()
        model = load_from_card(path, device=device)
        dev = next(model.parameters()).device
        clean = clean_accuracy(model, test_data, indices=clean_idx, device=dev)
        gen = torch.Generator().manual_seed(seed)
        x_adv = run_attack("pgd", model, x_r.to(dev), y_r.to(dev), generator=gen, **SWEEP_PGD)
        robust = robust_accuracy(model, x_r.to(dev), y_r.to(dev), x_adv)
        point = {
            "ratio": ratio,
            "clean_accuracy": clean,
            "clean_n": n_clean,
            "robust_accuracy": robust,
            "robust_n": n_rob,
            "sha256": sha,
            "train_seconds": round(train_s, 1),
            "eval_seconds": round(time.perf_counter() - t0, 1),
        }
        log.info("γ = %g: clean %.4f, PGD-20 %.4f", ratio, clean, robust)
        return point

    def record(point: dict[str, Any]) -> None:
        result["points"].append(point)
        tmp = results_path.with_name(results_path.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(tmp, results_path)
        if callback is not None:
            callback(point)

    record(measure(card_path, gamma0, 0.0))
    prev_weights = card_path.parent / card["weights"]
    prev_sha = card["sha256"]
    hp = card.get("training", {}).get("hyperparameters", {})
    for ratio in steps:
        name = f"sweep-{ratio:g}"
        step_card = out / f"{name}.json"
        t0 = time.perf_counter()
        if not step_card.is_file():
            cfg = TrainConfig(
                arch=card["arch"],
                width=int(kw.get("width", 64)),
                act="kwta",
                ratio=ratio,
                epochs=passes,
                batch_size=int(hp.get("batch_size", 128)),
                lr=lr,
                schedule="onecycle",
                warmup=0.25,
                nesterov=True,
                label_smoothing=float(hp.get("label_smoothing", 0.0)),
                weight_decay=float(hp.get("weight_decay", 5e-4)),
                subset=subset,
                seed=seed,
                device=device,
                out_dir=str(out),
                name=name,
                eval_n=0,
                init_from=str(prev_weights),
                init_sha256=prev_sha,
            ).validate()
            ckpt = out / f"{name}.ckpt" / "checkpoint.json"
            train(cfg, train_data=train_data, test_data=test_data, resume=ckpt.is_file())
        train_s = time.perf_counter() - t0
        record(measure(step_card, ratio, train_s))
        prev_weights = out / f"{name}.safetensors"
        prev_sha = sha256_of(prev_weights)
    return result


def publish_sweep(
    result: Mapping[str, Any], start_card: Mapping[str, Any], directory: str | os.PathLike[str]
) -> Path:
    """Write a finished :func:`ratio_sweep` as the zoo's Fig. 4 results file.

    Args:
        result: What :func:`ratio_sweep` returned.
        start_card: Card of the model the sweep started from (its sha256 must be the one
            the sweep recorded).
        directory: The models' folder (``pretrained/``).

    Returns:
        The path of ``<directory>/sweep.json``.

    Raises:
        ValueError: ``result`` was not computed from ``start_card``'s weights, or has no
            fine-tuned step.
    """
    if result["settings"]["start_sha256"] != start_card["sha256"]:
        raise ValueError(f"the sweep did not start from {start_card['name']}'s weights")
    if len(result["points"]) < 2:
        raise ValueError("the sweep has no fine-tuned step yet")
    published = {"format": SWEEP_FORMAT, "models": model_refs({"start": start_card}), **result}
    return write_results(published, directory, SWEEP_FILE)


def sweep_device_note(sweep: Mapping[str, Any]) -> str:
    """One sentence on where a published sweep ran (``""`` when the file does not say).

    A sweep measured on CUDA before :func:`kwta.utils.exact_cuda_math` existed says
    ``"fp32": "tf32"``: its evaluations ran with cuDNN's TF32 convolutions.
    """
    dev = sweep.get("device")
    if not isinstance(dev, Mapping):
        return ""
    text = f"Fine-tuned and measured on {dev.get('name') or dev.get('type') or 'an unnamed device'}"
    if dev.get("fp32") == "tf32":
        text += (
            " with cuDNN's TF32 convolutions (PyTorch's default; the explorer now evaluates in "
            "IEEE fp32 on CUDA) — docs/paper.md gives how much that moves these numbers"
        )
    return text + "."


def read_sweep(
    directory: str | os.PathLike[str], cards: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The published sweep if it started from one of ``cards`` ({name: card}) as it is now.

    Returns:
        The results (``start``, ``settings``, ``points`` as :func:`ratio_sweep` returns
        them), or ``None`` when missing, unreadable, of another format, or computed from
        weights that are not in ``cards`` any more.
    """
    try:
        name = json.loads((Path(directory) / SWEEP_FILE).read_text())["models"]["start"]["name"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(name, str) or name not in cards:
        return None
    return read_results(directory, SWEEP_FILE, SWEEP_FORMAT, {"start": cards[name]})
