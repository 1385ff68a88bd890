"""The paper's settings, each named once.

Xiao, Zhong, Zheng, "Enhancing Adversarial Defense by k-Winners-Take-All"
(ICLR 2020, arXiv:1905.10510). Values come from Sec. 4 and App. D.1 (CIFAR-10,
pixels in [0, 1]); where the paper is silent the comment says whose value is used.
Every module that needs one of them imports it from here.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CITATION",
    "CW_BINARY_SEARCH_STEPS",
    "CW_INITIAL_CONST",
    "CW_LR",
    "CW_STEPS",
    "DEEPFOOL_CANDIDATES",
    "DEEPFOOL_OVERSHOOT",
    "DEEPFOOL_STEPS",
    "EPOCHS",
    "EPS",
    "FREE_REPLAYS",
    "INCREMENTAL_DELTA",
    "INCREMENTAL_EPOCHS",
    "LR_DROP_EPOCH",
    "MIM_DECAY",
    "MIM_STEPS",
    "PGD_STEPS",
    "STEP_SIZE",
    "TRADES_BETA",
    "TRAIN_PGD_STEPS",
    "TRAIN_STEP_SIZE",
    "TRAIN_TRADES_STEPS",
]

#: How cards and tables cite the paper.
CITATION: Final = (
    "Xiao, Zhong, Zheng, 'Enhancing Adversarial Defense by k-Winners-Take-All', "
    "ICLR 2020 (arXiv:1905.10510)"
)

# --- threat model and evaluation attacks (Sec. 4, App. D.1) -------------------------

#: L∞ radius for CIFAR-10 pixels in [0, 1] (≈ 8/255), for every attack and for training.
EPS: Final = 0.031
#: Step size of the evaluation PGD and MIM.
STEP_SIZE: Final = 0.003
#: Iterations of the evaluation PGD (with a random start).
PGD_STEPS: Final = 40
#: Iterations of MIM; its decay is Foolbox's default (the paper does not state it).
MIM_STEPS: Final = 20
MIM_DECAY: Final = 1.0
#: Carlini-Wagner L2: optimisation steps, binary-search steps, Adam learning rate and
#: initial constant (confidence 0, Foolbox's default).
CW_STEPS: Final = 20
CW_BINARY_SEARCH_STEPS: Final = 5
CW_LR: Final = 0.01
CW_INITIAL_CONST: Final = 0.01
#: DeepFool: iterations, candidate classes and Foolbox's default overshoot.
DEEPFOOL_STEPS: Final = 20
DEEPFOOL_CANDIDATES: Final = 10
DEEPFOOL_OVERSHOOT: Final = 0.02

# --- training (Sec. 2.2, App. D.1) ----------------------------------------------------

#: Epochs of the paper's schedule; the learning rate drops 10x after :data:`LR_DROP_EPOCH`.
EPOCHS: Final = 80
LR_DROP_EPOCH: Final = 50
#: PGD iterations of adversarial training; the TRADES reference code runs 10.
TRAIN_PGD_STEPS: Final = 8
TRAIN_TRADES_STEPS: Final = 10
#: Step size of the training attacks: not stated; 0.007 is the TRADES reference value
#: for ε = 0.031 (≈ Madry's 2/255).
TRAIN_STEP_SIZE: Final = 0.007
#: TRADES β = 1/λ.
TRADES_BETA: Final = 6.0
#: Free adversarial training: replays m per minibatch.
FREE_REPLAYS: Final = 8
#: Incremental fine-tuning: γ is lowered by δ, with this many epochs per step.
INCREMENTAL_DELTA: Final = 0.005
INCREMENTAL_EPOCHS: Final = 2
