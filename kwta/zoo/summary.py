"""Reading the zoo: a model card summarised for tables, its paper reference row,
its ReLU twin and the default model pair of the app's pages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kwta.zoo.published import PAPER_TABLE1, PAPER_TABLE2, PaperRow
from kwta.zoo.tiers import tier_of

__all__ = [
    "ADVERSARIAL_METHODS",
    "ModelSummary",
    "as_float",
    "default_pair",
    "display_order",
    "fig2_models",
    "fig6_rows",
    "landscape_selection",
    "paper_reference",
    "published_metrics",
    "summarize_card",
    "table3_models",
    "twin_of",
]


#: Fast AT (FGSM from a random start, the zoo's cheap stand-in for Madry's PGD-AT) is
#: compared with the paper's AT rows.
_METHOD_TO_PAPER = {
    "natural": "Natural",
    "pgd": "AT",
    "trades": "TRADES",
    "free": "FAT",
    "fgsm": "AT",
}


_METHOD_LABEL = {
    "natural": "natural",
    "pgd": "PGD adversarial training (AT)",
    "trades": "TRADES",
    "free": "free adversarial training (FAT)",
    "fgsm": "fast adversarial training (FGSM + random start, Wong et al. 2020)",
}


_ATTACKS = ("pgd", "mim", "cw", "deepfool")


#: Adversarial training methods, in the order the app prefers them for "AT" panels.
ADVERSARIAL_METHODS: tuple[str, ...] = ("pgd", "fgsm", "free", "trades")


def as_float(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _int(v: Any) -> int | None:
    f = as_float(v)
    return int(f) if f is not None else None


@dataclass(frozen=True)
class ModelSummary:
    """What the model zoo shows about one model card (missing fields are ``None``).

    Attributes:
        name: Model name.
        arch: Architecture name.
        width: First-stage channels.
        act: ``"relu"``, ``"kwta"`` or ``"lwta"``.
        ratio: k-WTA γ (``None`` otherwise).
        group_size: LWTA group size (``None`` otherwise).
        method: Training method key (natural, pgd, trades, free).
        method_label: Human-readable training method.
        epochs: Training epochs as recorded.
        clean: Clean accuracy measured by us.
        clean_n: Test images behind ``clean``.
        robust: Attack → robust accuracy measured by us.
        a_rob: Worst case over the attacks evaluated, per image.
        robust_n: Images behind the robust numbers.
        eps: L∞ radius of the robust evaluation.
        activation_label: E.g. ``"k-WTA-0.1"``, ``"ReLU"``, ``"LWTA-0.1"`` (the paper's labels).
        description: The card's description, if any.
        tier: The zoo tier (``"cpu"``, ``"paper"``; :func:`kwta.zoo.tiers.tier_of`), if any.
    """

    name: str
    arch: str
    width: int | None
    act: str
    ratio: float | None
    group_size: int | None
    method: str | None
    method_label: str
    epochs: int | None
    clean: float | None
    clean_n: int | None
    robust: dict[str, float] = field(default_factory=dict)
    a_rob: float | None = None
    robust_n: int | None = None
    eps: float | None = None
    activation_label: str = ""
    description: str = ""
    tier: str | None = None


def summarize_card(card: Mapping[str, Any]) -> ModelSummary:
    """Read a model card tolerantly (cards written by ``kwta train``/``kwta evaluate`` or by hand).

    Metrics are looked up as ``metrics.clean_accuracy`` (else ``clean``),
    ``metrics.robust_accuracy.<attack>``
    (else ``metrics.<attack>``) and ``metrics.A_rob`` (else ``a_rob``).
    """
    kw = card.get("arch_kwargs") or {}
    act = str(kw.get("act", "relu")).lower()
    act_kw = kw.get("act_kwargs") or {}
    ratio = as_float(act_kw.get("ratio")) if act == "kwta" else None
    if act == "kwta" and ratio is None:
        ratio = 0.1  # the KWTA module's default
    group = _int(act_kw.get("group_size", 10)) if act == "lwta" else None
    training = card.get("training") or {}
    method = training.get("method") if isinstance(training, Mapping) else None
    method = str(method).lower() if method else None
    epochs_raw = training.get("epochs") if isinstance(training, Mapping) else None
    if isinstance(epochs_raw, Mapping):
        epochs_raw = epochs_raw.get("effective_epochs", epochs_raw.get("main"))
    epochs = _int(epochs_raw)
    m = card.get("metrics") or {}
    clean = as_float(m.get("clean_accuracy", m.get("clean")))
    clean_n = m.get("clean_n", m.get("n"))
    ra_raw = m.get("robust_accuracy")
    ra: Mapping[str, Any] = ra_raw if isinstance(ra_raw, Mapping) else {}
    robust: dict[str, float] = {}
    for a in _ATTACKS:
        v = as_float(ra.get(a, m.get(a)))
        if v is not None:
            robust[a] = v
    a_rob = as_float(m.get("A_rob", m.get("a_rob")))
    if act == "kwta":
        label = f"k-WTA-{ratio:g}"
    elif act == "lwta":
        label = f"LWTA-{1.0 / float(group):g}" if group else "LWTA"
    else:
        label = "ReLU" if act == "relu" else act

    return ModelSummary(
        name=str(card.get("name", "?")),
        arch=str(card.get("arch", "?")),
        width=_int(kw.get("width")),
        act=act,
        ratio=ratio,
        group_size=group,
        method=method,
        method_label=_METHOD_LABEL.get(method or "", method or "unknown"),
        epochs=epochs,
        clean=clean,
        clean_n=_int(clean_n),
        robust=robust,
        a_rob=a_rob,
        robust_n=_int(m.get("robust_n")),
        eps=as_float(m.get("eps")),
        activation_label=label,
        description=str(card.get("description", "")),
        tier=tier_of(card),
    )


def paper_reference(summary: ModelSummary) -> PaperRow | None:
    """The paper's CIFAR-10 ResNet-18 row for the same activation and training method.

    Table 1 for ReLU and k-WTA-0.1/0.2 under natural, AT, TRADES and FAT
    training; Table 2 for LWTA-0.1/0.2 (natural, AT). ``None`` when the paper
    has no such row (other γ, other methods, another architecture). The paper's
    networks are width 64; a row is returned for any width (compare with care).
    """
    if summary.arch != "resnet18" or summary.method not in _METHOD_TO_PAPER:
        return None
    training = _METHOD_TO_PAPER[summary.method]
    for row in PAPER_TABLE1 + PAPER_TABLE2:
        if row.training == training and row.activation == summary.activation_label:
            return row
    return None


def published_metrics(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The paper's numbers for a card's setting, in the card's own metric names.

    What :func:`kwta.evaluation.report.update_card` stores as the card's ``published``
    block, beside the measured ``metrics`` (fractions; ``None``: not reported).
    ``None`` when the paper has no row for the setting.
    """
    row = paper_reference(summarize_card(card))
    if row is None:
        return None

    def r(v: float | None) -> float | None:  # the paper's one decimal, as a fraction
        return None if v is None else round(v, 4)

    return {
        "source": (
            f"Xiao, Zhong, Zheng (ICLR 2020), {row.table}: CIFAR-10, {row.model} at width 64, "
            f"ε = 0.031, {row.training} training, {row.activation} (quoted, not reproduced)"
        ),
        "training": row.training,
        "activation": row.activation,
        "clean_accuracy": r(row.clean),
        "robust_accuracy": {
            "pgd": r(row.pgd),
            "mim": r(row.mim),
            "cw": r(row.cw),
            "deepfool": r(row.deepfool),
        },
        "black_box": r(row.bb),
        "A_rob": r(row.a_rob),
    }


def _optional(card: Mapping[str, Any]) -> bool:
    """Whether the card's zoo recipe is an optional one (a comparison arm such as Fig. 6's
    directly trained ``kwta0.1-direct``): pickers take it only when nothing else fits."""
    zoo = card.get("zoo")
    recipe = zoo.get("recipe") if isinstance(zoo, Mapping) else None
    return bool(recipe.get("optional")) if isinstance(recipe, Mapping) else False


def _summaries(cards: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, ModelSummary]]:
    """``(name, summary)`` in card order, the optional recipes' models last."""
    ordered = sorted(cards.items(), key=lambda item: _optional(item[1]))  # stable
    return [(n, summarize_card(c)) for n, c in ordered]


def _pick(
    cards: Mapping[str, Mapping[str, Any]], act: str, method: str | None, ratio: float | None
) -> str | None:
    summaries = _summaries(cards)
    pool = [(n, s) for n, s in summaries if s.act == act]
    for want_method, want_ratio in ((method, ratio), (method, None), (None, ratio), (None, None)):
        for n, s in pool:
            if want_method is not None and s.method != want_method:
                continue
            if want_ratio is not None and s.ratio is not None and abs(s.ratio - want_ratio) > 1e-9:
                continue
            return n
    return None


def default_pair(cards: Mapping[str, Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """The default ReLU-vs-k-WTA comparison: naturally trained ReLU and k-WTA-0.1 if present.

    Falls back to any ReLU / any k-WTA model (in card order, optional recipes' models
    last); ``None`` where there is none.
    """
    return _pick(cards, "relu", "natural", None), _pick(cards, "kwta", "natural", 0.1)


def table3_models(cards: Mapping[str, Mapping[str, Any]]) -> dict[str, str | None]:
    """The zoo's models in the roles of the paper's Table 3 (App. D.3).

    ``relu``/``kwta``: naturally trained ReLU and k-WTA-0.1; ``relu_at``/``kwta_at``:
    adversarially trained ones (any method but natural). ``None`` where the zoo has
    no such model; no fallback to another kind, so a role is never filled wrongly.
    """
    summaries = _summaries(cards)

    def find(act: str, natural: bool) -> str | None:
        for n, s in summaries:
            if s.act != act or (s.method == "natural") != natural:
                continue
            if act == "kwta" and (s.ratio is None or abs(s.ratio - 0.1) > 1e-9):
                continue
            return n
        return None

    return {
        "relu": find("relu", True),
        "kwta": find("kwta", True),
        "relu_at": find("relu", False),
        "kwta_at": find("kwta", False),
    }


def fig2_models(cards: Mapping[str, Mapping[str, Any]]) -> dict[str, str | None]:
    """The naturally trained ReLU, LWTA and k-WTA models: Fig. 2's activations, trained.

    k-WTA prefers γ = 0.1 (then any γ); ``None`` where the zoo has no naturally trained
    model with that activation (no fallback to adversarially trained ones).
    """
    natural = {k: v for k, v in cards.items() if summarize_card(v).method == "natural"}
    return {
        "relu": _pick(natural, "relu", "natural", None),
        "lwta": _pick(natural, "lwta", "natural", None),
        "kwta": _pick(natural, "kwta", "natural", 0.1),
    }


def _lineage(cards: Mapping[str, Mapping[str, Any]], name: str) -> list[str]:
    """``name`` and the zoo models it was fine-tuned from (by the sha256 of ``init_from``)."""
    by_sha = {str(c["sha256"]): n for n, c in cards.items() if c.get("sha256")}
    chain = [name]
    while len(chain) <= len(cards):
        training = cards[chain[-1]].get("training")
        init = training.get("init_from") if isinstance(training, Mapping) else None
        sha = init.get("sha256") if isinstance(init, Mapping) else None
        parent = by_sha.get(str(sha)) if sha else None
        if parent is None or parent in chain:
            break
        chain.append(parent)
    return chain


def _started_from_scratch(card: Mapping[str, Any]) -> bool:
    training = card.get("training")
    return not (isinstance(training, Mapping) and training.get("init_from"))


def fig6_rows(cards: Mapping[str, Mapping[str, Any]], ratio: float = 0.1) -> list[dict[str, Any]]:
    """Fig. 6 at one γ: a k-WTA model reached by incremental fine-tuning and one trained
    directly, with the passes and wall time each took in all (parents included).

    Naturally trained k-WTA models at ``ratio`` whose cards record how they were trained:
    ``incremental`` ones have ``incremental_from`` set; ``direct`` ones neither that nor an
    ``init_from``. Each row: ``{"name", "how", "passes", "seconds", "devices", "lineage",
    "complete", "summary"}``: ``seconds`` is ``None`` when a card of the lineage has no wall
    time, ``devices`` the machines the lineage trained on (as the cards name them),
    ``complete`` whether the lineage reaches a model trained from scratch (else a parent
    is missing and only part of the cost is counted), ``summary`` a :class:`ModelSummary`;
    empty unless both kinds are present.
    """
    rows: dict[str, dict[str, Any]] = {}
    for name, card in cards.items():
        s = summarize_card(card)
        if s.act != "kwta" or s.method != "natural" or s.ratio is None:
            continue
        if abs(s.ratio - ratio) > 1e-9:
            continue
        training = card.get("training")
        training = training if isinstance(training, Mapping) else {}
        hp = training.get("hyperparameters")
        hp = hp if isinstance(hp, Mapping) else {}
        how = (
            "incremental"
            if hp.get("incremental_from") is not None
            else "direct"
            if training.get("init_from") is None
            else None
        )
        if how is None or how in rows:
            continue
        lineage = _lineage(cards, name)
        passes = 0
        seconds: float | None = 0.0
        devices: list[str] = []
        for n in lineage:
            t = cards[n].get("training")
            passes += summarize_card(cards[n]).epochs or 0
            wall = as_float(t.get("wall_time_s")) if isinstance(t, Mapping) else None
            seconds = None if seconds is None or wall is None else seconds + wall
            dev = t.get("device_name") if isinstance(t, Mapping) else None
            if isinstance(dev, str) and dev not in devices:
                devices.append(dev)
        rows[how] = {
            "name": name,
            "how": how,
            "passes": passes,
            "seconds": seconds,
            "devices": devices,
            "lineage": lineage,
            "complete": _started_from_scratch(cards[lineage[-1]]),
            "summary": s,
        }
    if set(rows) != {"incremental", "direct"}:
        return []
    return [rows["incremental"], rows["direct"]]


def twin_of(cards: Mapping[str, Mapping[str, Any]], name: str) -> str | None:
    """The ReLU model trained the same way as ``name``: the source of its transfer attack.

    Tramèr et al. (NeurIPS 2020) and the paper's App. D.3 transfer adversarial
    examples from an undefended twin. ``None`` for a ReLU model, an unknown
    name, or when the zoo has no ReLU model of the same architecture and width
    trained with the same method.
    """
    if name not in cards:
        return None
    s = summarize_card(cards[name])
    if s.act == "relu":
        return None
    same = {
        k: v
        for k, v in cards.items()
        if (o := summarize_card(v)).method == s.method and (o.arch, o.width) == (s.arch, s.width)
    }
    return _pick(same, "relu", s.method, None)


def landscape_selection(cards: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Fig. 5's panels where available: ReLU and k-WTA(-0.1), natural and adversarially trained.

    The adversarial panels take PGD-AT models, else free-AT, else TRADES ones
    (the first method for which the zoo has a model).

    Returns:
        Up to four distinct names; if no adversarially trained model exists, the
        natural pair (or whatever :func:`default_pair` finds).
    """
    methods = {summarize_card(v).method for v in cards.values()}
    adversarial = next((m for m in ADVERSARIAL_METHODS if m in methods), "pgd")
    out: list[str] = []
    for method in ("natural", adversarial):
        for act, ratio in (("relu", None), ("kwta", 0.1)):
            same = {k: v for k, v in cards.items() if summarize_card(v).method == method}
            n = _pick(same, act, method, ratio)
            if n is not None and n not in out:
                out.append(n)
    if not out:
        out = [n for n in default_pair(cards) if n is not None]
    return out


#: Training methods and activations in the order the app shows them (natural first, ReLU first).
_METHOD_ORDER = {"natural": 0, "pgd": 1, "fgsm": 2, "trades": 3, "free": 4}
_ACT_ORDER = {"relu": 0, "lwta": 1, "kwta": 2}


def display_order(summary: ModelSummary) -> tuple[int, int]:
    """Sort key of a model in the app: by training method, then ReLU before LWTA before k-WTA."""
    return _METHOD_ORDER.get(summary.method or "", 9), _ACT_ORDER.get(summary.act, 9)
