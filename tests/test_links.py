"""kwta.explorer.links and .limits: the explorer's links, the text it echoes, the caps."""

from __future__ import annotations

import math

import pytest

from kwta.data import CIFAR10_CLASSES, cifar10_sample
from kwta.explorer.lesson import image_params, page_link
from kwta.explorer.limits import ENV_MAX_QUERIES, max_queries
from kwta.explorer.links import display_dir, literal, parse_link_value, shown_value, url_value


@pytest.mark.parametrize(
    ("raw", "default", "want"),
    [
        ("1", False, True), ("off", True, False), ("12", 0, 12), ("1e3", 0, 1000),
        ("0.25", 0.1, 0.25), ("a,b", ["x"], ["a", "b"]), ("0.5,0.2", [0.1], [0.5, 0.2]),
        (["3", "7"], 0, 7), ("cat", "dog", "cat"),
    ],
)  # fmt: skip
def test_a_link_value_is_read_as_its_default_s_type(
    raw: object, default: object, want: object
) -> None:
    assert parse_link_value(raw, default) == want


@pytest.mark.parametrize(
    ("raw", "default"), [("maybe", True), ("inf", 0.1), ("1e999", 0), ("x", 3)]
)
def test_a_value_that_does_not_fit_is_refused(raw: str, default: object) -> None:
    with pytest.raises(ValueError):
        parse_link_value(raw, default)


def test_written_values_read_back() -> None:
    for value in (True, False, 7, 0.031, [0.05, 0.5], ["relu-nat", "kwta0.1-nat"], "ce"):
        back = parse_link_value(url_value(value), value)
        assert back == (list(value) if isinstance(value, list) else value) or (
            isinstance(value, float) and math.isclose(back, value, rel_tol=1e-6)
        )
    assert shown_value(10**308) == "1.00e+308" and shown_value(-(10**15)) == "-1.00e+15"
    assert shown_value(12) == "12"


def test_user_text_is_inert_and_short() -> None:
    assert literal("[x](javascript:alert(1))") == "`[x](javascript:alert(1))`"
    assert literal("a`b\nc") == "`a'b c`" and literal("") == "`(empty)`"
    assert literal("x" * 500, 20) == "`" + "x" * 19 + "…`"


def test_caps_and_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_MAX_QUERIES, raising=False)
    assert max_queries(False) == 20_000 and max_queries(True) == 200_000
    monkeypatch.setenv(ENV_MAX_QUERIES, "5000")
    assert max_queries(False) == 5000
    monkeypatch.setenv(ENV_MAX_QUERIES, "-3")
    assert max_queries(False) == 20_000
    monkeypatch.setenv("KWTA_PRETRAINED", "/srv/secret/models")
    assert display_dir() == "$KWTA_PRETRAINED"


def test_lesson_links_pick_the_same_image() -> None:
    data = cifar10_sample("test")
    params = image_params("atk", data, 17)
    label = CIFAR10_CLASSES.index(params["atk_cls"])
    same = [int(i) for i in (data.labels == label).nonzero().flatten()][params["atk_nth"]]
    assert same == 17 and params["atk_img"] == "class"
    link = page_link("attack", {"atk_steps": 40, "atk_rs": True, "run": 1} | params)
    assert link.startswith("attack?atk_steps=40&atk_rs=1&run=1&atk_img=class")
