"""Every model shipped in pretrained/: sha256 checked, card numbers reproduced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kwta.attacks._core import is_correct
from kwta.data import cifar10, cifar10_sample
from kwta.zoo.hub import list_pretrained, load_pretrained, pretrained_dir

CARDS = list_pretrained(Path(__file__).resolve().parents[1] / "pretrained")
# The bundled sample is 1 000 images: one binomial standard deviation is at most 1.6 points.
SAMPLE_TOLERANCE = 0.05


def _clean(card: dict) -> float:
    return float(card["metrics"]["clean_accuracy"])


def test_zoo_is_not_empty() -> None:
    assert CARDS, "pretrained/ holds no model cards"
    assert pretrained_dir().resolve() == (Path(__file__).resolve().parents[1] / "pretrained")


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_loads_and_matches_on_the_sample(name: str) -> None:
    card = CARDS[name]
    model = load_pretrained(name)  # checks the sha256 against the card
    assert not model.training
    for key in ("sha256", "training", "metrics", "arch_kwargs"):
        assert key in card
    x, y = cifar10_sample("test").tensors()
    acc = float(is_correct(model, x, y, batch_size=250).float().mean())
    assert abs(acc - _clean(card)) < SAMPLE_TOLERANCE, (acc, _clean(card))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_clean_accuracy_on_full_test_set(name: str, full_tarball: Path) -> None:
    card = CARDS[name]
    assert card["metrics"]["clean_n"] == 10_000
    test = cifar10("test", full_tarball)
    model = load_pretrained(name)
    correct = 0
    for start in range(0, len(test), 500):
        x, y = test.tensors(slice(start, start + 500))
        with torch.no_grad():
            correct += int(is_correct(model, x, y).sum())
    # the card's number came from the same fp16 weights and the same images
    assert correct / len(test) == pytest.approx(_clean(card), abs=2e-4)


#: The card's PGD-40 is rerun on the first batch of its subset: the evaluation draws PGD's
#: random starts batch after batch from one seeded generator, so its first batch is
#: reproduced exactly by attacking those images alone (a quarter of the full rerun's time).
PGD_CHECK_N = 256  # kwta.evaluation.robust.evaluate's default batch size


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_pgd_robust_accuracy_reproduces(name: str, full_tarball: Path) -> None:
    """The card's PGD-40 outcome, image by image, on the first batch of the card's own subset
    (same seeded indices and random starts), within two images. The reference is the card's
    per-image mask or, for cards evaluated before masks were stored, a full rerun's
    (``evaluation.attacks.pgd.rerun``, ``scripts/record_robust_masks.py``) whose count is within
    three images of the card's — k-WTA is discontinuous, so another machine's float rounding
    moves a few images."""
    from kwta.attacks.registry import get_attack
    from kwta.evaluation.robust import attack_subset, scored_attack, unpack_mask

    card = CARDS[name]
    subset = card["evaluation"]["subset"]
    entry = card["evaluation"]["attacks"]["pgd"]
    assert entry["robust"] == round(card["metrics"]["robust_accuracy"]["pgd"] * subset["n"])
    ref = entry if "robust_mask" in entry else entry["rerun"]
    mask = unpack_mask(ref["robust_mask"], subset["n"])
    assert int(mask.sum()) == ref["robust"]
    assert abs(ref["robust"] - entry["robust"]) <= 3
    model = load_pretrained(name)
    params = get_attack("pgd").settings(eps=card["metrics"]["eps"])
    assert params == entry["settings"]
    sub = attack_subset(
        model, cifar10("test", full_tarball), attacks=["pgd"], group="standard",
        n=subset["n"], eps=params["eps"], seed=subset["seed"], batch_size=PGD_CHECK_N,
        device=torch.device("cpu"),
    )  # fmt: skip
    assert sub.record["indices_sha256"] == subset["indices_sha256"]
    first = slice(0, PGD_CHECK_N)
    ok, _ = scored_attack(
        "pgd", model, sub.x[first], sub.y[first], sub.ok_clean[first], params,
        seed=subset["seed"], batch_size=PGD_CHECK_N, progress=False,
    )  # fmt: skip
    differ = (ok != mask[:PGD_CHECK_N]).nonzero().flatten().tolist()
    assert len(differ) <= 2, (name, differ)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_card_carries_the_papers_numbers_for_its_setting(name: str) -> None:
    from kwta.zoo.summary import published_metrics

    card = CARDS[name]
    published = published_metrics(card)
    assert published is not None, "every zoo model has a row in the paper's Table 1"
    assert card["published"] == published
    assert "Not the paper's width-64" in card["status"]  # says what it is not


def test_no_card_holds_a_machine_path() -> None:
    """Cards name data and outputs by kind and file name, never by a machine's folders."""
    import re

    from kwta.zoo.hub import pretrained_dir

    absolute = re.compile(r"(^|[\s:=])(/|~/|[A-Za-z]:\\)[\w.-]")
    for path in sorted(Path(pretrained_dir()).glob("*.json")):
        strings: list[str] = []

        def walk(o: object, strings: list[str] = strings) -> None:
            if isinstance(o, str):
                strings.append(o)
            elif isinstance(o, dict):
                for v in o.values():
                    walk(v)
            elif isinstance(o, list):
                for v in o:
                    walk(v)

        walk(json.loads(path.read_text()))
        assert strings
        bad = [s for s in strings if absolute.search(s)]
        assert not bad, (path.name, bad[:3])


def test_every_card_follows_the_schema() -> None:
    """Each shipped card is exactly what ModelCard writes (no legacy or unknown keys)."""

    from kwta.evaluation.transfer import TRANSFER_FILE
    from kwta.explorer.lesson import LESSON_FILE
    from kwta.training.sweep import SWEEP_FILE
    from kwta.zoo.card import ModelCard
    from kwta.zoo.hub import pretrained_dir

    results = {LESSON_FILE, TRANSFER_FILE, SWEEP_FILE}
    paths = [p for p in sorted(Path(pretrained_dir()).glob("*.json")) if p.name not in results]
    assert len(paths) >= 5
    for path in paths:
        assert ModelCard.read(path).to_dict() == json.loads(path.read_text()), path.name


def test_lesson_results_match_the_shipped_models() -> None:
    """pretrained/lesson.json was computed on the models shipped beside it (else the Lesson
    page would recompute it on first use): rerun ``kwta lesson`` after changing a model."""
    from kwta.explorer.lesson import read_lesson
    from kwta.zoo.hub import list_pretrained, pretrained_dir
    from kwta.zoo.summary import default_pair

    cards = list_pretrained()
    relu, kw = default_pair(cards)
    assert relu and kw
    assert read_lesson(pretrained_dir(), {"relu": cards[relu], "kwta": cards[kw]}) is not None


def test_transfer_results_match_the_shipped_models() -> None:
    """pretrained/transfer.json (Table 3 on the Model zoo page) was computed on the four
    models shipped beside it: rerun ``kwta transfer`` after changing one of them."""
    from kwta.evaluation.transfer import read_transfer
    from kwta.zoo.hub import list_pretrained, pretrained_dir
    from kwta.zoo.summary import table3_models

    cards = list_pretrained()
    roles = table3_models(cards)
    assert all(roles.values()), roles  # the zoo has all four of Table 3's models
    results = read_transfer(pretrained_dir(), {r: cards[str(n)] for r, n in roles.items()})
    assert results is not None
    assert results["n"] == 500 and len(set(results["indices"])) == 500
    for t in results["roles"]:
        for s in results["roles"]:
            assert 0.0 <= results["matrix"][t][s] <= 1.0
