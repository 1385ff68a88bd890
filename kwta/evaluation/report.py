"""Evaluation results as a text table and written into a model card."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kwta.evaluation.robust import A_ROB_DEFINITION
from kwta.zoo.card import ModelCard
from kwta.zoo.hub import WeightsError, load_card, sha256_of
from kwta.zoo.summary import published_metrics

__all__ = [
    "format_table",
    "update_card",
]


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
    restarts = result.get("pgd_restarts")
    if restarts:
        label = f"PGD-40, worst of {restarts['starts']} starts"
        lines.append(f"{label:<28}{restarts['accuracy']:>10.2%}{sub['n']:>9}")
    adaptive = result.get("adaptive")
    if adaptive:
        lines.append("")
        lines.append(
            f"adaptive attacks (beyond the paper), {adaptive['n']} images, "
            f"clean {adaptive['clean_accuracy']:.2%}"
        )
        lines.append(f"{'attack':<28}{'accuracy':>10}{'queries/img':>13}")
        lines.append("-" * 51)
        for name, r in adaptive["attacks"].items():
            label = name if r.get("kind") != "transfer" else f"transfer from {r.get('source')}"
            queries = r.get("max_queries_per_image") or "-"
            lines.append(f"{label:<28}{r['accuracy']:>10.2%}{queries:>13}")
        lines.append("-" * 51)
        lines.append(
            f"{'worst (' + str(adaptive['worst_attack']) + ')':<28}"
            f"{adaptive['A_rob_adaptive']:>10.2%}"
        )
        lines.append(
            f"{'per image, every attack':<28}{adaptive['A_rob_adaptive_per_image']:>10.2%}"
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
    device, date, command). A run without standard attacks keeps the card's
    standard numbers and its clean accuracy (writing them only where the card
    has none). The paper's numbers for the same setting, where it has them, go
    into ``published`` (:func:`kwta.zoo.summary.published_metrics`). With
    ``result["adaptive"]`` (:func:`evaluate_adaptive`),
    ``metrics.adaptive`` and ``evaluation_adaptive`` are written too. Only the
    JSON card is rewritten (atomically); the weights file and the card's
    ``weights``/``sha256`` fields are not changed, and the weights' sha256 is
    checked before and after.

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
    # an adaptive-only run keeps the card's standard evaluation, its clean number included
    # (with its own provenance), unless the card has none yet
    if result["attacks"] or "clean_accuracy" not in metrics:
        metrics.update(
            clean_accuracy=result["clean"]["accuracy"],
            clean_n=result["clean"]["n"],
            clean_data=result.get("data"),
        )
    common = {
        "data": result.get("data"),
        "device": result.get("device"),
        "device_name": result.get("device_name"),
        "date": result.get("date"),
        "command": command,
    }
    if result["attacks"]:  # an adaptive-only run keeps the card's standard attacks
        metrics.update(
            robust_accuracy={k: v["accuracy"] for k, v in result["attacks"].items()},
            A_rob=result.get("A_rob"),
            A_rob_per_image=result.get("A_rob_per_image"),
            worst_attack=result.get("worst_attack"),
            robust_n=result["subset"]["n"],
            eps=result.get("eps"),
        )
        if result.get("pgd_restarts"):
            metrics["pgd_restarts"] = {
                k: result["pgd_restarts"][k] for k in ("starts", "accuracy", "per_start_accuracy")
            }
        else:  # the metrics come from one evaluation: an older one's restarts go too
            metrics.pop("pgd_restarts", None)
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
            "pgd_restarts": result.get("pgd_restarts"),
        } | common
    elif "evaluation" not in card:
        card["evaluation"] = {"clean": result["clean"]} | common
    published = published_metrics(card)  # the paper's numbers beside ours
    if published is not None:
        card["published"] = published
    adaptive = result.get("adaptive")
    if adaptive:
        metrics["adaptive"] = {
            "n": adaptive["n"],
            "clean_accuracy": adaptive["clean_accuracy"],
            "robust_accuracy": {k: v["accuracy"] for k, v in adaptive["attacks"].items()},
            "max_queries_per_image": {
                k: v["max_queries_per_image"] for k, v in adaptive["attacks"].items()
            },
            "standard_pgd": adaptive["standard_pgd"],
            "A_rob_adaptive": adaptive["A_rob_adaptive"],
            "A_rob_adaptive_per_image": adaptive["A_rob_adaptive_per_image"],
            "worst_attack": adaptive["worst_attack"],
            "twin": adaptive.get("twin"),
            "eps": adaptive["eps"],
        }
        card["evaluation_adaptive"] = dict(adaptive) | common
    card["metrics"] = metrics
    ModelCard.from_dict(card, where=f"card {path}").write(path)
    if (
        sha256_of(weights) != card["sha256"]
    ):  # pragma: no cover - we never open the weights for writing
        raise WeightsError(f"{weights} changed while its card was updated")
    return card
