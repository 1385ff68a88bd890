"""The explorer's settings: the device every model runs on, the pages' caps, links.

Read once per server process, from the machine and the environment
(``$KWTA_MAX_QUERIES``, ``$KWTA_PRETRAINED``).
"""

from __future__ import annotations

import torch

from kwta.explorer import limits
from kwta.explorer.links import display_dir
from kwta.utils import default_device

__all__ = [
    "DEVICE",
    "MAX_GRID",
    "MAX_QUERIES",
    "MAX_STEPS",
    "ON_GPU",
    "PAPER_URL",
    "TRAIN_HINT",
    "UPLOAD_TYPES",
    "display_dir",
]

#: Where every model runs: CUDA when available, else CPU.
DEVICE: torch.device = default_device()

ON_GPU: bool = DEVICE.type == "cuda"

#: The caps on one job's settings (:mod:`kwta.explorer.limits`); queries by device.
MAX_STEPS, MAX_GRID = limits.MAX_STEPS, limits.MAX_GRID
#: Most model evaluations one adaptive attack may spend on an image (``$KWTA_MAX_QUERIES``;
#: default 20 000 on a CPU, 200 000 on a GPU): the shared server's cap.
MAX_QUERIES: int = limits.max_queries(ON_GPU)

#: Upload types offered by the file picker (decoding checks the content anyway).
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]

PAPER_URL = "https://arxiv.org/abs/1905.10510"

TRAIN_HINT = """
No pretrained models were found in `{directory}`.

Train some with the command line (a GPU makes this minutes instead of hours), e.g.

```bash
# App. D.1: natural ReLU and k-WTA-0.1 (incremental fine-tuning from γ = 0.2) ResNet-18s
python -m kwta train --act relu --data ~/cifar10 --out pretrained/
python -m kwta train --act kwta --ratio 0.1 --incremental-from 0.2 --epochs 50 \
    --lr-drop-epoch 50 --data ~/cifar10 --out pretrained/
# a quick CPU demo model (small, on the bundled images)
python -m kwta train --act kwta --ratio 0.1 --width 16 --epochs 5 --out pretrained/
```

or point `KWTA_PRETRAINED` at a folder of model cards. The **Overview** and
**1-D toy fit** pages work without any model.
"""
