"""The README stays true: its Python example runs, its commands match the code."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no Python example"
    for block in blocks:
        scope: dict[str, object] = {}
        exec(compile(block, "README.md", "exec"), scope)
    x_adv, x = scope["x_adv"], scope["images"]
    assert isinstance(x_adv, torch.Tensor) and isinstance(x, torch.Tensor)
    assert (x_adv - x).abs().max() <= 0.031 + 1e-6


def test_ci_runs_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text()
    cmd = re.search(r"TEST_CMD='([^']+)'", ci)
    assert cmd is not None and cmd.group(1) in README.read_text()
