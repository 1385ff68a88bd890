"""kwta.zoo.compare: the Model zoo page's tables, from the shipped cards."""

from __future__ import annotations

from kwta.zoo.compare import (
    ATTACK_NAMES,
    card_facts,
    comparison_notes,
    comparison_table,
    percent,
)
from kwta.zoo.hub import list_pretrained
from kwta.zoo.summary import paper_reference, summarize_card


def test_each_shipped_card_beside_its_paper_row() -> None:
    """Every shipped card: the "measured here" row is the card's own numbers, the paper row the
    published ones for its activation and training method, and the notes say on how many
    images ours were measured and which table is quoted."""
    cards = list_pretrained()
    assert cards
    for card in cards.values():
        s = summarize_card(card)
        paper = paper_reference(s)
        table = comparison_table(s, paper)
        assert list(table) == ["", "clean (A_std)", *ATTACK_NAMES.values(), "A_rob"]
        assert table["clean (A_std)"][0] == percent(s.clean) != "—"
        assert table["A_rob"][0] == percent(s.a_rob)
        for key, column in ATTACK_NAMES.items():
            assert table[column][0] == percent(s.robust.get(key))
        facts = dict(card_facts(s, card))
        assert facts["activation"] == s.activation_label
        assert str(card["sha256"])[:12] in facts["file"]
        notes = " · ".join(comparison_notes(s, paper))
        assert f"clean on {s.clean_n}" in notes
        if paper is None:
            assert set(table["A_rob"][1:]) == {"—"} and "no row" in notes
        else:
            assert table["clean (A_std)"][1] == percent(paper.clean)
            assert table["PGD"][1] == percent(paper.pgd) and paper.table in notes


def test_percent() -> None:
    assert percent(0.1234) == "12.3%" and percent(None) == "—" and percent(1.0, 0) == "100%"


def test_fig6_from_the_shipped_zoo() -> None:
    """The shipped zoo holds both kinds of k-WTA-0.1 (incremental and direct): one row each,
    the lineage spelled out, the card's numbers; a caveat for every way they differ."""
    from kwta.zoo.compare import fig6_caveats, fig6_table
    from kwta.zoo.summary import fig6_rows

    rows = fig6_rows(list_pretrained())
    assert len(rows) == 2
    table = fig6_table(rows)
    assert table["model"] == [r["name"] for r in rows]
    assert any(t.startswith("incremental: ") and " → " in t for t in table["training"])
    assert any(t == "direct at γ = 0.1" for t in table["training"])
    assert table["clean"] == [percent(r["summary"].clean, 2) for r in rows]
    caveats = fig6_caveats(rows)
    assert ("different numbers of passes" in " ".join(caveats)) == (
        rows[0]["passes"] != rows[1]["passes"]
    )
