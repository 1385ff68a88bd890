"""Model zoo: one card per pretrained model, our numbers next to the paper's (Table 1/2)."""

from __future__ import annotations

import json

import explorer_ui as ui
import figures
import streamlit as st

from kwta.evaluation.transfer import read_transfer
from kwta.zoo.hub import pretrained_dir
from kwta.zoo.summary import paper_reference, summarize_card, table3_models

P = "zoo"
ATTACK_NAMES = {"pgd": "PGD", "cw": "C&W", "deepfool": "DeepFool", "mim": "MIM"}

st.title("Model zoo")
st.markdown(
    "Every pretrained model found in the models folder, with the accuracy **we measured** "
    "(`kwta evaluate`: clean accuracy on the test split; robust accuracy under the paper's "
    "App. D.1 attacks at ε = 0.031 on a fixed class-balanced subset; A_rob = the worst "
    "attack's robust accuracy, as in the paper) next to the **numbers the paper publishes** "
    "for the same activation and training method (CIFAR-10 ResNet-18, width 64: Table 1, LWTA "
    "from Table 2). "
    "The paper's numbers are quoted, not reproduced."
)

cards = ui.require_models() or {}
if not cards:
    st.stop()

ui.init_state(f"{P}_filter", "all", choices=["all", "relu", "kwta", "lwta"])
st.sidebar.radio(
    "Show",
    ["all", "relu", "kwta", "lwta"],
    key=f"{P}_filter",
    format_func={"all": "all models", "relu": "ReLU", "kwta": "k-WTA", "lwta": "LWTA"}.__getitem__,
)
ui.show_notices()
flt = st.session_state[f"{P}_filter"]
rows = []
for card in cards.values():
    s = summarize_card(card)
    if flt != "all" and s.act != flt:
        continue
    rows.append((s, paper_reference(s), card))

if rows:
    st.plotly_chart(
        figures.zoo_figure([(s, p) for s, p, _ in rows]),
        key=f"{P}_chart",
        config={"displaylogo": False},
    )
else:
    st.info("No model of this kind.")

directory = pretrained_dir()
for s, paper, card in rows:
    with st.container(border=True, key=f"{P}_card_{s.name}"):
        st.subheader(s.name)
        if s.description:
            st.caption(s.description)
        weights = directory / str(card.get("weights", ""))
        if not weights.is_file():
            st.error(
                f"The weights file `{card.get('weights')}` named by this card is missing: "
                "the other pages cannot load this model.",
                icon=":material/error:",
            )
        left, right = st.columns([2, 3])
        gamma = f"{s.ratio:g}" if s.ratio is not None else "—"
        if s.group_size is not None:
            gamma = f"LWTA groups of {s.group_size} (γ = {1 / s.group_size:g})"
        left.markdown(
            f"""
| | |
|---|---|
| architecture | {s.arch} |
| width | {s.width if s.width is not None else "—"} |
| activation | {s.activation_label} |
| sparsity γ | {gamma} |
| training | {s.method_label} |
| epochs | {s.epochs if s.epochs is not None else "—"} |
| file | `{card.get("card_file", "")}` · sha256 `{str(card.get("sha256", ""))[:12]}…` |
"""
        )
        cols = ["clean (A_std)", *ATTACK_NAMES.values(), "A_rob"]
        ours = [ui.pct(s.clean), *(ui.pct(s.robust.get(a)) for a in ATTACK_NAMES), ui.pct(s.a_rob)]
        table = {"": ["measured here", "paper (published)"]}
        for i, c in enumerate(cols):
            if paper is None:
                ref = "—"
            elif c == "clean (A_std)":
                ref = ui.pct(paper.clean)
            elif c == "A_rob":
                ref = ui.pct(paper.a_rob)
            else:
                key = next(k for k, v in ATTACK_NAMES.items() if v == c)
                ref = ui.pct(getattr(paper, key))
            table[c] = [ours[i], ref]
        right.dataframe(table, hide_index=True, key=f"{P}_table_{s.name}")
        notes = []
        if s.clean_n or s.robust_n:
            evaluated = ", ".join(ATTACK_NAMES[a] for a in ATTACK_NAMES if a in s.robust)
            notes.append(
                f"ours: clean on {s.clean_n or '?'} test images, attacks on {s.robust_n or '?'}"
                + (f" at ε = {s.eps:g}" if s.eps is not None else "")
                + (f"; A_rob over {evaluated} only" if evaluated and len(s.robust) < 4 else "")
            )
        if paper is not None:
            notes.append(
                f"paper: {paper.table}, {paper.training} / {paper.activation}, {paper.model} "
                "width 64, ε = 0.031, full CIFAR-10 test set"
                + ("" if s.width in (None, 64) else f" — this model is width {s.width}")
            )
            if (paper.training, paper.activation) == ("Natural", "k-WTA-0.2"):
                notes.append("the paper prints A_rob 4.2% for this row although its MIM is 3.9%")
        else:
            notes.append("paper: no row for this activation and training method")
        if not s.robust:
            notes.append(
                f"not evaluated yet: `python -m kwta evaluate --model {s.name} --update-card`"
            )
        right.caption(" · ".join(notes))
        with st.expander("Full card (JSON)"):
            st.json(
                json.dumps({k: v for k, v in card.items() if k != "training"} | {"training": "…"}),
                expanded=False,
            )
            ui.download(
                st,
                "Card JSON",
                json.dumps(card, indent=2),
                f"{s.name}.json",
                key=f"{P}_dl_{s.name}",
            )

st.header("Transfer attacks between the models (Table 3)")
roles = {r: n for r, n in table3_models(cards).items() if n is not None}
transfer = (
    read_transfer(directory, {r: cards[n] for r, n in roles.items()}) if len(roles) >= 2 else None
)
if transfer is None:
    st.info(
        "No transfer results for these models yet: `python -m kwta transfer` attacks each of "
        "the zoo's ReLU, k-WTA-0.1, ReLU (AT) and k-WTA-0.1 (AT) models with PGD and "
        "classifies the examples with every other one, and writes `transfer.json` beside the "
        "models (a few minutes on a CPU).",
        icon=":material/info:",
    )
else:
    order, labels = transfer["roles"], transfer["labels"]

    def matrix_table(values: dict[str, dict[str, float]]) -> dict[str, list[str]]:
        table = {"target \\ source": [f"{labels[t]} ({roles[t]})" for t in order]}
        for src in order:
            table[labels[src]] = [ui.pct(values[t][src]) for t in order]
        return table

    st.markdown(
        "Each row is a **target** model, each column the **source** whose PGD examples it "
        "classifies; the entries are the target's accuracy on them (higher: the attack "
        "transferred less). The paper: k-WTA models are harder to reach by transfer, and their "
        "own examples transfer worse — the two kinds' adversarial examples are nearly disjoint."
    )
    c1, c2 = st.columns(2)
    c1.caption("measured here")
    c1.dataframe(matrix_table(transfer["matrix"]), hide_index=True, key=f"{P}_t3_ours")
    c2.caption("paper (Table 3, width 64, full test set)")
    c2.dataframe(matrix_table(transfer["paper"]), hide_index=True, key=f"{P}_t3_paper")
    settings = transfer["settings"]
    st.caption(
        f"{transfer['n']} class-balanced test images; PGD ε = {settings['eps']:g}, "
        f"{settings.get('steps', '?')} steps of {settings.get('alpha', '?')}, random start "
        f"(seed {settings['seed']}); clean accuracy on them: "
        + ", ".join(f"{labels[r]} {ui.pct(transfer['clean'][r])}" for r in order)
        + ". Our diagonal is white-box (examples crafted on the target itself: the zoo has one "
        "copy of each model); the paper's uses a second, independently trained copy."
    )

ui.sync_url([f"{P}_filter"])
