"""The README and docs/ stay true: the Python example runs, the commands match the code, the
measured tables match the cards where they now live, and every relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"
DOCS = README.parent / "docs"


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


# ------------------------------------------------------------ README tables vs cards
STANDARD = ("pgd", "mim", "cw", "deepfool")
ADAPTIVE = ("pgd", "apgd-ce", "apgd-dlr", "square", "fd-pgd", "eot-pgd", "transfer")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def zoo_cells(card: dict) -> str:
    """The measured cells of a model's row in the README's Model zoo table."""
    m = card["metrics"]
    cells = [f"{100 * m['clean_accuracy']:.2f} %"]
    cells += [_pct(m["robust_accuracy"].get(a)) for a in STANDARD]
    robust_n = f"{m['robust_n']:,}".replace(",", " ")
    cells += [f"**{_pct(m['A_rob'])}** ({m['worst_attack']})", robust_n]
    return "| " + " | ".join(cells) + " |"


def adaptive_cells(card: dict) -> str:
    """The measured cells of a model's row in the README's adaptive-attack table."""
    a = card["metrics"]["adaptive"]
    cells = [f"{a['n']} ({_pct(a['clean_accuracy'])})"]
    cells += [_pct(a["robust_accuracy"].get(k)) for k in ADAPTIVE]
    cells += [f"**{_pct(a['A_rob_adaptive'])}** ({a['worst_attack']})"]
    return "| " + " | ".join(cells) + " |"


def _rows(name: str) -> list[str]:
    """A model's table rows in the zoo and adaptive-attack pages."""
    text = (DOCS / "zoo.md").read_text() + (DOCS / "adaptive.md").read_text()
    return [ln for ln in text.splitlines() if ln.startswith(f"| `{name}` |")]


def test_readme_tables_match_the_cards() -> None:
    """Every shipped model has a row in the zoo table (and, once evaluated adaptively,
    in the adaptive table) whose numbers are the ones on its card."""
    from kwta.zoo.hub import list_pretrained

    cards = list_pretrained(README.parent / "pretrained")
    assert cards
    for name, card in cards.items():
        rows = _rows(name)
        assert any(zoo_cells(card) in r for r in rows), (name, zoo_cells(card), rows)
        if "adaptive" in card["metrics"]:
            want = adaptive_cells(card)
            assert any(want in r for r in rows), (name, want, rows)


def test_paper_table_quotes_the_lesson_file() -> None:
    """The figure-by-figure table's measured numbers are those of pretrained/lesson.json."""
    import json

    from kwta.explorer.lesson import summarize_lesson

    s = summarize_lesson(json.loads((README.parent / "pretrained" / "lesson.json").read_text()))
    text = (DOCS / "paper.md").read_text()
    relu, kw = s["relu"], s["kwta"]
    assert f"bundled test image #{s['image']}," in text
    assert f"{s['jumps'][0]} jumps in the k-WTA fit, {s['jumps'][1]} in the ReLU fit" in text
    assert f"misclassified from step {relu['first_fooled']} on" in text
    assert kw["final_correct"]
    if kw["first_fooled"] is None:
        assert "`kwta0.1-nat` is never misclassified" in text
    else:
        assert f"flips to another class at step {kw['first_fooled']}" in text
    assert f"{relu['roughness']:.3f} vs {kw['roughness']:.3f} along the gradient sign" in text
    lo, hi = relu["weight_loss"]
    assert f"`relu-nat` from {lo:.2f} to {hi:.2f}" in text
    lo, hi = kw["weight_loss"]
    assert f"`kwta0.1-nat` from {lo:.2f} to {hi:.2f}" in text


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors of a Markdown page."""
    out = set()
    for line in text.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            out.add(title.replace(" ", "-"))
    return out


def test_every_relative_link_resolves() -> None:
    """Each relative link of the README and of docs/ names a file that exists and, with a
    #fragment, a heading of that file."""
    pages = [README, *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'src="([^"]+)"', text):
            if re.match(r"[a-z]+:", target):
                continue  # a URL
            path, _, frag = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target}")
            elif frag and dest.suffix == ".md" and frag not in _anchors(dest.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_readme_is_short_and_docs_has_an_index() -> None:
    assert len(README.read_text().splitlines()) <= 250
    index = (DOCS / "README.md").read_text()
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name
