"""Model zoo: one card per pretrained model, our numbers next to the paper's (Table 1/2)."""

from __future__ import annotations

import json

import cached
import figures
import streamlit as st
import ui

from kwta.evaluation.transfer import read_transfer
from kwta.explorer import jobs
from kwta.training.sweep import read_sweep, sweep_device_note, sweep_ratios
from kwta.zoo.compare import (
    card_facts,
    comparison_notes,
    comparison_table,
    fig6_caveats,
    fig6_table,
    transfer_table,
)
from kwta.zoo.hub import pretrained_dir
from kwta.zoo.summary import fig6_rows, paper_reference, summarize_card, table3_models

P = "zoo"
#: Fig. 4 live: class-balanced test images for the clean accuracy at each γ (fixed weights).
GAMMA_IMAGES = 200
#: Fig. 4 live when no trained sweep is published: γ from the model's own down to this.
GAMMA_LOWEST = 0.025

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
kwta_cards = {n: c for n, c in cards.items() if summarize_card(c).act == "kwta"}
gamma_model = (
    ui.model_picker(f"{P}_gamma_model", kwta_cards, "kwta0.2-nat", label="Fig. 4: k-WTA model")
    if kwta_cards
    else None
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
    ui.chart(figures.zoo_figure([(s, p) for s, p, _ in rows]), key=f"{P}_chart")
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
        facts = card_facts(s, card)
        left.markdown("| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in facts))
        right.dataframe(comparison_table(s, paper), hide_index=True, key=f"{P}_table_{s.name}")
        right.caption(" · ".join(comparison_notes(s, paper)))
        with st.expander("Full card (JSON)"):
            st.json(
                json.dumps({k: v for k, v in card.items() if k != "training"} | {"training": "…"}),
                expanded=False,
            )
            card_json = json.dumps(card, indent=2)
            ui.download(st, "Card JSON", card_json, f"{s.name}.json", key=f"{P}_dl_{s.name}")

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

    st.markdown(
        "Each row is a **target** model, each column the **source** whose PGD examples it "
        "classifies; the entries are the target's accuracy on them (higher: the attack "
        "transferred less). The paper: k-WTA models are harder to reach by transfer, and their "
        "own examples transfer worse — the two kinds' adversarial examples are nearly disjoint."
    )
    c1, c2 = st.columns(2)
    c1.caption("measured here")
    c1.dataframe(
        transfer_table(transfer["matrix"], order, labels, roles),
        hide_index=True,
        key=f"{P}_t3_ours",
    )
    c2.caption("paper (Table 3, width 64, full test set)")
    c2.dataframe(
        transfer_table(transfer["paper"], order, labels, roles),
        hide_index=True,
        key=f"{P}_t3_paper",
    )
    settings = transfer["settings"]
    st.caption(
        f"{transfer['n']} class-balanced test images; PGD ε = {settings['eps']:g}, "
        f"{settings.get('steps', '?')} steps of {settings.get('alpha', '?')}, random start "
        f"(seed {settings['seed']}); clean accuracy on them: "
        + ", ".join(f"{labels[r]} {ui.pct(transfer['clean'][r])}" for r in order)
        + ". Our diagonal is white-box (examples crafted on the target itself: the zoo has one "
        "copy of each model); the paper's uses a second, independently trained copy."
    )

st.header("Accuracy as γ falls (Fig. 4)")
st.markdown(
    "The paper (Sec. 4.2) starts from a k-WTA model trained at γ = 0.2 and lowers γ step by "
    "step, fine-tuning at each (incremental fine-tuning, Sec. 2.2). Down to γ ≈ 0.1 the "
    "standard accuracy hardly moves while PGD-20's robust accuracy rises; below it both "
    "fall — robust accuracy peaks on the way. (The paper draws this as curves without printed "
    "numbers, so only its shape is compared here.)"
)
sweep = read_sweep(directory, cards)
if sweep is None:
    st.info(
        "No trained sweep for these models yet: `python -m kwta sweep --model kwta0.2-nat "
        "--data PATH` fine-tunes a copy at each γ, measures it and writes `sweep.json` beside "
        "the models (hours on a CPU, resumable). Meanwhile the button below changes γ on a "
        "model's fixed weights.",
        icon=":material/info:",
    )
live = None
if gamma_model is not None:
    gamma_card = kwta_cards[gamma_model]
    own = summarize_card(gamma_card).ratio or 0.1
    if sweep is not None:
        ratios = tuple(float(p["ratio"]) for p in sweep["points"])
    else:
        lower = sweep_ratios(own, GAMMA_LOWEST, GAMMA_LOWEST) if own > GAMMA_LOWEST else []
        ratios = (own, *lower)
    clicked = st.button(
        f"Measure {gamma_model} at each γ without retraining ({GAMMA_IMAGES} test images)",
        key=f"{P}_gamma_run",
        icon=":material/play_arrow:",
    )
    if ui.remember_run(f"{P}_gamma_ran", {"model": gamma_model, "ratios": ratios}, clicked):
        model = ui.get_model(gamma_model)
        if model is not None:
            sha = str(gamma_card["sha256"])
            try:
                live = ui.run_with_progress(
                    lambda sink: cached.run_gamma(
                        gamma_model, sha, ratios, GAMMA_IMAGES, _model=model, _progress=sink
                    ),
                    label=f"{gamma_model}: clean accuracy at {len(ratios)} values of γ",
                )
            except (ValueError, jobs.JobError) as err:
                st.error(f"{gamma_model}: {err}", icon=":material/error:")
if sweep is not None or live is not None:
    ui.chart(
        figures.gamma_sweep_figure(
            sweep["points"] if sweep is not None else None,
            live.to_dict() if live is not None else None,
            trained_label=f"fine-tuned from {sweep['start']}" if sweep is not None else "",
            live_label=f"{gamma_model}, γ changed without retraining",
        ),
        key=f"{P}_gamma_chart",
    )
fig4_notes = []
if sweep is not None:
    cfg = sweep["settings"]
    pts = sweep["points"]
    fig4_notes.append(
        f"Solid: `kwta sweep` from {sweep['start']}, {cfg['passes']} fine-tuning pass(es) per "
        f"step at peak LR {cfg['lr']:g}; clean accuracy on {pts[0]['clean_n']} and PGD-20 "
        f"(ε = {cfg['pgd']['eps']:g}) on {pts[0]['robust_n']} class-balanced test images; "
        f"{sum(p['train_seconds'] for p in pts) / 60:.0f} min of fine-tuning."
    )
    fig4_notes.append(sweep_device_note(sweep))
if live is not None and gamma_model is not None:
    gamma_ref = (gamma_model, str(gamma_card["sha256"]))
    prov = ui.provenance("gamma", {"ratios": ratios}, model=gamma_ref, batch=(GAMMA_IMAGES, 0))
    ui.result_downloads(st.columns(2), live.to_dict() | {"model": gamma_model}, prov, live,
                        ui.get_model(gamma_model), f"gamma-{gamma_model}-n{GAMMA_IMAGES}",
                        label="γ sweep JSON", key=f"{P}_dl_gamma")  # fmt: skip
    fig4_notes.append(
        f"Dashed: {gamma_model}'s own weights with every k-WTA layer set to each γ, clean "
        f"accuracy on {GAMMA_IMAGES} class-balanced test images — not the paper's procedure "
        "(which fine-tunes at each γ): it shows how much the weights depend on the γ they were "
        "trained with."
    )
if fig4_notes:
    st.caption(" ".join(fig4_notes))

st.header("Incremental fine-tuning vs direct training (Fig. 6)")
st.markdown(
    "Sec. 2.2: a small γ is reached best by training at γ = 0.2 first and lowering γ step by "
    "step with a little fine-tuning each time; the paper (App. D.2, Fig. 6) finds this beats "
    "training at the final γ from the start, in standard and in robust accuracy, whenever "
    "γ < 0.2. Here: the zoo's k-WTA-0.1 models, at the same number of training passes."
)
fig6 = fig6_rows(cards)
if not fig6:
    st.info(
        "The zoo has no pair to compare yet: `python -m kwta zoo build --only kwta0.1-direct "
        "--data PATH` trains k-WTA-0.1 directly for as many passes as `kwta0.1-nat` took with "
        "its parent (hours on a CPU, resumable).",
        icon=":material/info:",
    )
else:
    st.dataframe(fig6_table(fig6), hide_index=True, key=f"{P}_fig6")
    caveats = fig6_caveats(fig6)
    st.caption(
        "From the model cards (clean on the test split, the paper's attacks on the cards' "
        "subset at ε = 0.031). Passes and time include the parent's training"
        + ("; " + "; ".join(caveats) if caveats else "")
        + "."
    )

ui.sync_url()
