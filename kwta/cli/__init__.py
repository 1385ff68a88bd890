"""Command line: ``kwta train`` and ``kwta evaluate`` (also ``python -m kwta``).

A thin argparse layer over :func:`kwta.training.loop.train` and
:func:`kwta.evaluation.robust.evaluate`; see their modules for the paper's settings
(Sec. 2.2, Sec. 4, App. D.1). Messages go to stderr through :mod:`logging`;
stdout carries only the final table (or JSON with ``--json -``).

Examples::

    # App. D.1, natural training of k-WTA-0.1 with incremental fine-tuning (Sec. 2.2):
    kwta train --act kwta --ratio 0.1 --incremental-from 0.2 --epochs 50 --lr-drop-epoch 50 \\
        --data ~/cifar10 --out runs/
    # PGD adversarial training of a ReLU ResNet-18:
    kwta train --method pgd --data ~/cifar10 --out runs/
    # Table 1 row: clean accuracy, PGD/MIM/C&W/DeepFool and A_rob on 1000 test images:
    kwta evaluate --card runs/resnet18-w64-kwta0.1-natural-s0.json --data ~/cifar10 --json out.json
"""

from __future__ import annotations

from kwta.cli.commands import main
from kwta.cli.options import PATH_OPTIONS, portable_command
from kwta.cli.parser import build_parser

__all__ = ["PATH_OPTIONS", "build_parser", "main", "portable_command"]
