"""torch.hub entry points: ``torch.hub.load(REPO, "kwta_resnet18", name="kwta0.1-nat")``.

Loads a model of the zoo in ``pretrained/`` (sha256-checked, eval mode, fp32),
exactly as :func:`kwta.load_pretrained` does. With ``source="local"`` REPO is a
checkout of this repository.
"""

from __future__ import annotations

dependencies = ["torch", "torchvision", "numpy", "safetensors"]

import importlib.abc  # noqa: E402
import importlib.machinery  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from torch import nn  # noqa: E402

_HERE = Path(__file__).resolve().parent


class _ModelsFinder(importlib.abc.MetaPathFinder):
    """Finds ``kwta.models`` in the top-level ``models/`` folder.

    In a checkout ``kwta/models`` is a symbolic link to ``models/`` (an installed
    package has it in place), but the zip torch.hub downloads has no links.
    """

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "kwta.models":
            return None
        init = _HERE / "models" / "__init__.py"
        return importlib.util.spec_from_file_location(
            fullname, init, submodule_search_locations=[str(init.parent)]
        )


def _import_path() -> None:
    """Make the package beside this file importable (torch.hub imports this file alone)."""
    if str(_HERE) not in sys.path:
        sys.path.insert(0, str(_HERE))
    if not (_HERE / "kwta" / "models").is_dir() and not any(
        isinstance(f, _ModelsFinder) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _ModelsFinder())


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
    _import_path()
    from kwta import load_pretrained

    model: nn.Module = load_pretrained(name, **kwargs)  # type: ignore[arg-type]
    return model
