"""torch.hub entry points: ``torch.hub.load(REPO, "kwta_resnet18", name="kwta0.1-nat")``.

Loads a model of the zoo in ``pretrained/`` (sha256-checked, eval mode, fp32),
exactly as :func:`kwta.load_pretrained` does. With ``source="local"`` REPO is a
checkout of this repository.
"""

from __future__ import annotations

dependencies = ["torch", "torchvision", "numpy", "safetensors"]

from torch import nn  # noqa: E402


def kwta_resnet18(name: str = "kwta0.1-nat", **kwargs: object) -> nn.Module:
    """A pretrained CIFAR-10 ResNet-18 of the k-WTA Explorer's zoo (ReLU or k-WTA).

    Args:
        name: Zoo model, e.g. ``"relu-nat"``, ``"kwta0.2-nat"``, ``"kwta0.1-nat"``,
            ``"relu-at"``, ``"kwta0.1-at"`` (see ``kwta.list_pretrained()``).
            A name is looked up, never used as a path.
        **kwargs: Passed to :func:`kwta.load_pretrained` (e.g. ``device``).

    Returns:
        The model in eval mode; it takes images in [0, 1] and normalises inside.
    """
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:  # torch.hub imports this file alone; the package sits beside it
        sys.path.insert(0, here)
    from kwta import load_pretrained

    model: nn.Module = load_pretrained(name, **kwargs)  # type: ignore[arg-type]
    return model
