"""The paper's published numbers, beside which the app and the README show ours:
Table 1 (CIFAR-10 robust accuracy), Table 2 (other activations), Table 3
(transfer attacks between ReLU and k-WTA models), and the
adaptive-attack results of later work (Tramèr et al. 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "PUBLISHED_ADAPTIVE",
    "TABLE3_ROLES",
    "PaperRow",
    "PublishedResult",
]


@dataclass(frozen=True)
class PaperRow:
    """Published CIFAR-10 numbers for one setting (fractions; ``None``: not reported).

    Attributes:
        table: Where they come from, e.g. ``"Table 1"``.
        training: The paper's training label (Natural, AT, TRADES, FAT).
        activation: The paper's activation label (ReLU, k-WTA-0.1, LWTA-0.2, …).
        model: Architecture (ResNet-18 for Table 1).
        clean: A_std.
        pgd, cw, deepfool, mim, bb: Robust accuracy per attack (BB: transfer black-box).
        a_rob: A_rob, the worst case over the white-box attacks.
    """

    table: str
    training: str
    activation: str
    model: str
    clean: float
    a_rob: float
    pgd: float | None = None
    cw: float | None = None
    deepfool: float | None = None
    mim: float | None = None
    bb: float | None = None


def _t1(training: str, act: str, *v: float) -> PaperRow:
    clean, pgd, cw, df, mim, bb, arob = (x / 100.0 for x in v)
    return PaperRow("Table 1", training, act, "ResNet-18", clean, arob, pgd, cw, df, mim, bb)


#: Table 1 (CIFAR-10, ResNet-18, ε = 0.031): A_std, PGD, C&W, DeepFool, MIM, BB, A_rob.
PAPER_TABLE1: tuple[PaperRow, ...] = (
    _t1("Natural", "ReLU", 92.9, 0.0, 0.0, 1.5, 0.0, 18.9, 0.0),
    _t1("Natural", "k-WTA-0.1", 89.3, 13.3, 27.9, 55.6, 13.1, 62.6, 13.1),
    _t1("Natural", "k-WTA-0.2", 91.7, 4.2, 6.2, 47.8, 3.9, 66.8, 4.2),
    _t1("AT", "ReLU", 83.5, 46.3, 43.6, 46.8, 45.9, 71.0, 43.6),
    _t1("AT", "k-WTA-0.1", 78.9, 51.4, 64.4, 70.4, 50.7, 73.4, 50.7),
    _t1("AT", "k-WTA-0.2", 81.4, 48.4, 52.7, 66.1, 47.4, 73.5, 47.4),
    _t1("TRADES", "ReLU", 79.7, 49.8, 52.3, 57.6, 49.9, 70.6, 49.8),
    _t1("TRADES", "k-WTA-0.1", 76.6, 55.0, 62.2, 66.0, 57.5, 72.3, 55.0),
    _t1("TRADES", "k-WTA-0.2", 80.4, 51.5, 57.7, 63.9, 53.4, 74.7, 51.5),
    _t1("FAT", "ReLU", 82.6, 42.7, 44.4, 49.7, 41.6, 73.4, 41.6),
    _t1("FAT", "k-WTA-0.1", 78.4, 51.7, 66.3, 72.4, 49.1, 72.3, 49.1),
    _t1("FAT", "k-WTA-0.2", 82.8, 48.4, 60.5, 67.2, 46.7, 76.8, 46.7),
)


#: Table 2 (App. D.3), ResNet-18 rows with LWTA (A_std and A_rob only).
PAPER_TABLE2: tuple[PaperRow, ...] = (
    PaperRow("Table 2", "Natural", "LWTA-0.1", "ResNet-18", 0.828, 0.037),
    PaperRow("Table 2", "Natural", "LWTA-0.2", "ResNet-18", 0.846, 0.009),
    PaperRow("Table 2", "AT", "LWTA-0.1", "ResNet-18", 0.714, 0.466),
    PaperRow("Table 2", "AT", "LWTA-0.2", "ResNet-18", 0.787, 0.431),
)


@dataclass(frozen=True)
class PublishedResult:
    """An adaptive-attack result from the literature (quoted, not measured here).

    Attributes:
        source: Who measured it, and where.
        model: The defended model attacked.
        reported: The robust accuracy its authors reported.
        reported_where: Where that number was reported.
        adaptive: The robust accuracy under the adaptive attack.
        attack: The attack.
    """

    source: str
    model: str
    reported: float
    reported_where: str
    adaptive: float
    attack: str


#: Published adaptive evaluations of k-WTA at ε = 0.031 on CIFAR-10.
PUBLISHED_ADAPTIVE: tuple[PublishedResult, ...] = (
    PublishedResult(
        source="Tramèr, Carlini, Brendel, Madry (NeurIPS 2020), Sec. 5.1",
        model="k-WTA-0.1 ResNet-18, adversarially trained",
        reported=0.507,
        reported_where="Xiao et al. Table 1 (AT, k-WTA-0.1, A_rob)",
        adaptive=0.0016,
        attack="PGD on Gaussian finite-difference gradients (σ = 8/255, margin loss, "
        "100 steps of 0.01, 100 → 20 000 samples per step)",
    ),
    PublishedResult(
        source="Croce & Hein (ICML 2020), AutoAttack",
        model="k-WTA DenseNet-121, adversarially trained (the authors' model)",
        reported=0.524,
        reported_where="Xiao et al. (as quoted by Croce & Hein)",
        adaptive=0.185,
        attack="AutoAttack (APGD-CE, APGD-DLR, FAB, Square)",
    ),
)


#: Table 3's four models, in its order: role → the paper's label.
TABLE3_ROLES: dict[str, str] = {
    "relu": "ReLU",
    "kwta": "k-WTA-0.1",
    "relu_at": "ReLU (AT)",
    "kwta_at": "k-WTA-0.1 (AT)",
}

#: Table 3 (App. D.3, CIFAR-10, ResNet-18): robust accuracy of each *target* (outer
#: key) under PGD examples crafted on each *source* (inner key). On the diagonal the
#: source is an independently trained second copy of the target.
PAPER_TABLE3: dict[str, dict[str, float]] = {
    target: dict(zip(TABLE3_ROLES, (v / 100.0 for v in row), strict=True))
    for target, row in (
        ("relu", (4.8, 75.5, 59.4, 84.7)),
        ("kwta", (61.2, 71.2, 67.8, 86.4)),
        ("relu_at", (62.7, 80.9, 61.6, 78.6)),
        ("kwta_at", (79.2, 78.6, 69.2, 67.2)),
    )
}
