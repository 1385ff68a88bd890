"""Our numbers beside the paper's, as the Model zoo page shows them (Table 1/2, Table 3).

Plain tables of strings and the notes that qualify them — what was measured on how many
images, which published row is compared and how it differs — so that the page only
draws them.

- :func:`percent`: ``0.1234`` → ``"12.3%"``;
- :func:`comparison_table`, :func:`comparison_notes`: one model card against its paper row;
- :func:`transfer_table`: a Table 3 matrix (target × source) as columns;
- :func:`published_adaptive_table`: the published adaptive attacks on k-WTA;
- :func:`fig6_table`, :func:`fig6_caveats`: incremental fine-tuning against direct
  training (Fig. 6), from :func:`kwta.zoo.summary.fig6_rows`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kwta.zoo.published import PUBLISHED_ADAPTIVE, PaperRow
from kwta.zoo.summary import ModelSummary

__all__ = [
    "ATTACK_NAMES",
    "card_facts",
    "comparison_notes",
    "comparison_table",
    "fig6_caveats",
    "fig6_table",
    "percent",
    "published_adaptive_table",
    "transfer_table",
]

#: The paper's white-box attacks (App. D.1) in its column order, by card key.
ATTACK_NAMES = {"pgd": "PGD", "cw": "C&W", "deepfool": "DeepFool", "mim": "MIM"}


def percent(v: float | None, digits: int = 1) -> str:
    """``0.1234`` → ``"12.3%"``; ``None`` → ``"—"``."""
    return "—" if v is None else f"{100.0 * v:.{digits}f}%"


def card_facts(s: ModelSummary, card: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A model's card in a few rows: architecture, width, activation, γ (or LWTA groups),
    training, epochs, the card's file and the weights' sha256 (shortened)."""
    gamma = f"{s.ratio:g}" if s.ratio is not None else "—"
    if s.group_size is not None:
        gamma = f"LWTA groups of {s.group_size} (γ = {1 / s.group_size:g})"
    sha = str(card.get("sha256", ""))[:12]
    return [
        ("architecture", s.arch),
        ("width", str(s.width) if s.width is not None else "—"),
        ("activation", s.activation_label),
        ("sparsity γ", gamma),
        ("training", s.method_label),
        ("epochs", str(s.epochs) if s.epochs is not None else "—"),
        ("file", f"`{card.get('card_file', '')}` · sha256 `{sha}…`"),
    ]


def comparison_table(s: ModelSummary, paper: PaperRow | None) -> dict[str, list[str]]:
    """Columns clean (A_std), each attack, A_rob; rows "measured here" and "paper (published)"."""
    ours = [percent(s.clean), *(percent(s.robust.get(a)) for a in ATTACK_NAMES), percent(s.a_rob)]
    theirs: list[float | None] = (
        [paper.clean, *(getattr(paper, a) for a in ATTACK_NAMES), paper.a_rob]
        if paper is not None
        else [None] * len(ours)
    )
    table = {"": ["measured here", "paper (published)"]}
    for column, mine, ref in zip(
        ["clean (A_std)", *ATTACK_NAMES.values(), "A_rob"], ours, theirs, strict=True
    ):
        table[column] = [mine, percent(ref)]
    return table


def comparison_notes(s: ModelSummary, paper: PaperRow | None) -> list[str]:
    """What each row of :func:`comparison_table` rests on, and where they differ."""
    notes = []
    if s.clean_n or s.robust_n:
        evaluated = ", ".join(ATTACK_NAMES[a] for a in ATTACK_NAMES if a in s.robust)
        notes.append(
            f"ours: clean on {s.clean_n or '?'} test images, attacks on {s.robust_n or '?'}"
            + (f" at ε = {s.eps:g}" if s.eps is not None else "")
            + (f"; A_rob over {evaluated} only" if evaluated and len(s.robust) < 4 else "")
        )
    if paper is not None:
        notes.append(
            f"paper: {paper.table}, {paper.training} / {paper.activation}, {paper.model} "
            "width 64, ε = 0.031, full CIFAR-10 test set"
            + ("" if s.width in (None, 64) else f" — this model is width {s.width}")
        )
        if (paper.training, paper.activation) == ("Natural", "k-WTA-0.2"):
            notes.append("the paper prints A_rob 4.2% for this row although its MIM is 3.9%")
    else:
        notes.append("paper: no row for this activation and training method")
    if not s.robust:
        notes.append(f"not evaluated yet: `python -m kwta evaluate --model {s.name} --update-card`")
    return notes


def transfer_table(
    values: Mapping[str, Mapping[str, float]],
    order: Sequence[str],
    labels: Mapping[str, str],
    names: Mapping[str, str],
) -> dict[str, list[str]]:
    """A Table 3 matrix as columns: one row per target model, one column per source.

    Args:
        values: ``values[target][source]``: the target's accuracy on the source's examples.
        order: The roles, in the table's order.
        labels: Each role's label (e.g. ``"k-WTA-0.1 (AT)"``).
        names: Each role's model name.
    """
    table = {"target \\ source": [f"{labels[t]} ({names[t]})" for t in order]}
    for src in order:
        table[labels[src]] = [percent(values[t][src]) for t in order]
    return table


def published_adaptive_table() -> dict[str, list[str]]:
    """:data:`kwta.zoo.published.PUBLISHED_ADAPTIVE` as columns: who, which model, the robust
    accuracy reported for it and where, what the adaptive attack left, and the attack."""
    rows = PUBLISHED_ADAPTIVE
    return {
        "who": [p.source for p in rows],
        "model": [p.model for p in rows],
        "reported": [f"{percent(p.reported)} ({p.reported_where})" for p in rows],
        "adaptive": [percent(p.adaptive, 2) for p in rows],
        "attack": [p.attack for p in rows],
    }


def fig6_table(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """:func:`kwta.zoo.summary.fig6_rows` as columns: how each model was trained (its
    lineage), passes and time in all, where, and its accuracies."""
    return {
        "training": [
            "incremental: " + " → ".join(reversed(r["lineage"]))
            if r["how"] == "incremental"
            else f"direct at γ = {r['summary'].ratio:g}"
            for r in rows
        ],
        "model": [r["name"] for r in rows],
        "passes in all": [r["passes"] for r in rows],
        "training time": [
            "—" if r["seconds"] is None else f"{r['seconds'] / 60:.0f} min" for r in rows
        ],
        "trained on": [", ".join(r["devices"]) or "—" for r in rows],
        "clean": [percent(r["summary"].clean, 2) for r in rows],
        "PGD-40": [percent(r["summary"].robust.get("pgd")) for r in rows],
        "A_rob": [percent(r["summary"].a_rob) for r in rows],
    }


def fig6_caveats(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Why a Fig. 6 pair may not be the paper's equal-budget comparison: different passes,
    different machines, a parent missing from the zoo."""
    first, second = rows[0], rows[1]
    caveats = []
    if first["passes"] != second["passes"]:
        caveats.append(
            f"the two were trained for different numbers of passes ({first['passes']} and "
            f"{second['passes']}), so this is not the equal-budget comparison"
        )
    if first["devices"] and second["devices"] and first["devices"] != second["devices"]:
        caveats.append("they were trained on different machines, so their times do not compare")
    if not first["complete"]:
        caveats.append(
            f"{first['name']}'s parent is not in the zoo any more: only its own passes count"
        )
    return caveats
