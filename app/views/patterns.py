"""Activation patterns: which units win, and how many change as ε grows (Sec. 3, Theorem 1)."""

from __future__ import annotations

import cached
import figures
import streamlit as st
import ui
from torch import nn

from kwta.analysis.patterns import PatternChange
from kwta.explorer import jobs
from kwta.explorer.patterns import (
    DEFAULT_RATIOS,
    change_curves,
    curve_records,
    other_ratios,
    patterns_export,
)
from kwta.explorer.runs import records_to_csv
from kwta.nn.activations import get_ratio
from kwta.zoo.summary import default_pair, summarize_card

P = "pat"
NONE = "(none)"
#: ε values of the pattern-change curves (random sign directions, pixel units).
GAMMAS = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8, 1.0]


st.title("Activation patterns (Sec. 3)")
st.markdown(
    "A k-WTA layer's **activation pattern** A(x) is the set of its k winners (Eq. 2). While the "
    "pattern stays fixed the network is linear; when it changes the output jumps. Theorem 1: "
    "in a wide layer even a tiny perturbation changes the pattern with high probability, so "
    "the linear pieces are dense around every input. Below: the winners of one layer for the "
    "chosen image, and how much of each pattern changes under random perturbations of growing "
    "size, for the network's own γ and for other γ on the same weights."
)

# ------------------------------------------------------------------ Theorem 1 (no model needed)
with st.expander("Theorem 1 on a single random layer (no trained model needed)"):
    c1, c2 = st.columns([1, 3])
    ui.init_state(f"{P}_t1gamma", 0.1, lo=0.01, hi=1.0)
    c1.slider("γ", 0.01, 1.0, step=0.01, key=f"{P}_t1gamma")
    if c1.button("Run the sweep", key=f"{P}_t1run"):
        st.session_state[f"{P}_t1shown"] = True
    if st.session_state.get(f"{P}_t1shown"):
        with st.spinner("200 random layers per width…"):
            sweep = cached.run_theorem1(float(st.session_state[f"{P}_t1gamma"]), 200, 0)
        ui.chart(figures.theorem1_figure(sweep), key=f"{P}_t1chart", where=c2)
        c2.caption(
            "W ~ N(0, 1/l), b = 0, x ~ N(0, I_m) and x′ = x + d·x⊥ with d²/‖x‖² = β: the chance "
            "that A(Wx) ≠ A(Wx′) grows with the width l, as the theorem predicts."
        )

cards = ui.require_models() or {}
if not cards:
    ui.sync_url()
    st.stop()
names = list(cards)
summaries = {n: summarize_card(c) for n, c in cards.items()}
relu_names = [n for n in names if summaries[n].act == "relu"]
default_model = default_pair(cards)[1] or names[0]

# ------------------------------------------------------------------ sidebar inputs
sb = st.sidebar
sb.header("Model and layer")
name = str(ui.model_picker(f"{P}_model", cards, default_model))
loaded = ui.get_model(name)
if loaded is None:
    st.stop()
model: nn.Module = loaded
sha = str(cards[name].get("sha256", ""))
layers = cached.run_layers(name, sha, _model=model)
layer_names = list(layers)
if not layer_names:  # e.g. an imported timm network: torch's own ReLU has no pattern to read
    st.info(
        f"{ui.literal(name)} has no ReLU, k-WTA or LWTA layer of `kwta.nn`: no pattern to show."
    )
    st.stop()
mid = next((n for n in layer_names if n.startswith("layer2")), layer_names[len(layer_names) // 2])
ui.init_state(f"{P}_layer", mid, choices=layer_names)
sb.selectbox(
    "Layer",
    layer_names,
    key=f"{P}_layer",
    format_func=lambda n: f"{n}  {'×'.join(map(str, layers[n]))}",
)
sb.header("Image")
image = ui.image_picker(P)
sb.header("Perturbations")
ui.init_state(f"{P}_eps", 0.002, lo=0.0, hi=0.1)
own = get_ratio(model)
is_kwta = own is not None
ui.init_state(f"{P}_gammas", list(DEFAULT_RATIOS) if is_kwta else [], choices=GAMMAS, item=float)
ui.init_state(f"{P}_relu", relu_names[0] if relu_names else NONE, choices=[NONE, *relu_names])
ui.init_state(f"{P}_dirs", 2, lo=1, hi=16)
ui.init_state(f"{P}_seed", 0, lo=0, hi=10**9)
ui.init_state(f"{P}_scope", "layer", choices=["layer", "mean"])
sb.slider("ε for the winner map", 0.0, 0.1, step=0.0005, format="%.4f", key=f"{P}_eps")
sb.multiselect(
    "Also evaluate at γ (same weights, a copy)",
    GAMMAS,
    key=f"{P}_gammas",
    disabled=not is_kwta,
    help="Only for k-WTA models. The weights stay as trained; only k changes.",
)
sb.selectbox("ReLU baseline", [NONE, *relu_names], key=f"{P}_relu")
sb.slider("Random directions per ε", 1, 16, key=f"{P}_dirs")
sb.number_input("Seed (directions)", 0, 10**9, key=f"{P}_seed")
sb.radio(
    "Curves for",
    ["layer", "mean"],
    key=f"{P}_scope",
    horizontal=True,
    format_func={"layer": "the chosen layer", "mean": "mean over layers"}.__getitem__,
)
ui.show_notices()

layer = str(st.session_state[f"{P}_layer"])
eps = float(st.session_state[f"{P}_eps"])
ratios = other_ratios(st.session_state[f"{P}_gammas"], own)
relu_name = st.session_state[f"{P}_relu"]
n_dirs = int(st.session_state[f"{P}_dirs"])
seed = int(st.session_state[f"{P}_seed"])
scope = str(st.session_state[f"{P}_scope"])
params = {
    "model": name,
    "layer": layer,
    "pixels": image.pixels.tobytes(),
    "eps": eps,
    "ratios": ratios,
    "relu": relu_name,
    "dirs": n_dirs,
    "seed": seed,
}
st.caption(
    f"Image: {image.caption}. Model {name} "
    + (
        f"(k-WTA, γ = {own:g} as trained)"
        if is_kwta
        else "(no k-WTA layers: the pattern is ReLU's x > 0)"
    )
    + f", layer {layer}."
)
clicked = st.button(
    "Compute patterns", type="primary", key=f"{P}_run", icon=":material/play_arrow:"
)
show = ui.remember_run(f"{P}_ran", params, clicked, light=n_dirs <= 2 and len(ratios) <= 3)

if show:
    wm = cached.run_winner(name, sha, image.pixels, layer, eps, seed, _model=model)
    st.subheader(f"Winner map of {layer} ({'×'.join(map(str, wm.shape))} = {wm.n_units} units)")
    m1, m2, m3, m4 = st.columns(4)
    share = f"{wm.n_winners / wm.n_units:.1%} of the units"
    m1.metric("winners on x", f"{wm.n_winners}", share, delta_color="off", delta_arrow="off")
    m2.metric("winners on x′", f"{int(wm.perturbed.sum())}")
    m3.metric(f"units changed at ε = {eps:g}", f"{wm.n_changed}")
    m4.metric("share of the pattern changed", f"{wm.changed_fraction:.1%}")
    maps = [
        ("clean", "winners on x (share of channels)", "Blues", "clean"),
        ("perturbed", f"winners on x′ (ε = {eps:g})", "Blues", "pert"),
        ("changed", "units that changed", "Reds", "changed"),
    ]
    for col, (which, title, scale, key) in zip(st.columns(3), maps, strict=True):
        fig = figures.winner_heatmap(wm.spatial(which).numpy(), title=title, colorscale=scale)
        ui.chart(fig, key=f"{P}_map_{key}", where=col)
    st.caption(
        "Each pixel is a spatial position of the layer; its colour is the share of the layer's "
        "channels that are winners there (or that entered/left the pattern). x′ = clip(x + ε·s) "
        "with a random ±1 direction s."
    )

    st.subheader("How much of the pattern changes as ε grows (Theorem 1)")

    def work(sink: jobs.ProgressSink) -> dict[str, PatternChange]:
        return cached.run_change(
            name, sha, image.pixels, ratios, n_dirs, seed, _model=model, _progress=sink
        )

    try:
        changes = ui.run_with_progress(work, label="Pattern changes")
    except (ValueError, jobs.JobError) as err:
        st.error(f"Cannot compute the pattern changes: {err}")
        st.stop()
    baseline: PatternChange | None = None
    relu_model: nn.Module | None = None
    if relu_name != NONE and relu_name != name:
        relu_model = ui.get_model(str(relu_name))
        if relu_model is not None:
            relu_sha = str(cards[relu_name].get("sha256", ""))
            baseline = cached.run_change(
                str(relu_name), relu_sha, image.pixels, (), n_dirs, seed, _model=relu_model
            )["as trained"]
    kind = f"k-WTA-{own:g}" if is_kwta else summaries[name].activation_label
    own_label = f"{kind} (as trained)"
    curves = change_curves(
        changes, own_label=own_label, layer=layer, scope="mean" if scope == "mean" else "layer",
        baseline=baseline, baseline_name=str(relu_name),
    )  # fmt: skip
    where = "mean over layers" if scope == "mean" else layer
    title = f"changed share of A(x), {where}"
    ui.chart(figures.pattern_change_figure(curves, title=title), key=f"{P}_change")
    st.caption(
        f"Averaged over {n_dirs} random sign direction(s) per ε. Other γ are evaluated on a copy "
        "of the same weights without retraining (the paper fine-tunes for each γ), so they show "
        "the raw effect of k on the pattern's stability."
    )
    st.subheader("Different images, different winners (Theorem 2)")
    profiles = {
        own_label.replace(" (as trained)", f" {name}"): cached.run_overlap(name, sha, _model=model)
    }
    if baseline is not None and relu_model is not None:
        profiles[f"ReLU baseline {relu_name}"] = cached.run_overlap(
            str(relu_name), str(cards[relu_name].get("sha256", "")), _model=relu_model
        )
    ui.chart(figures.overlap_figure(profiles), key=f"{P}_overlap")
    first = next(iter(profiles.values()))
    st.caption(
        f"Every pair of {first.n_images} class-balanced test images: the share of winners two "
        "different images have in common, per layer (solid), against random patterns of the "
        "same size (dotted: the layer's active share, γ for k-WTA). Theorem 2 (Sec. 3): in a "
        "wide k-WTA layer different inputs use nearly disjoint winners, so each input trains "
        f"its own few weights — why training works despite the jumps. Here {name}: "
        f"{first.mean_overlap:.3f} on average against {first.mean_chance:.3f} by chance."
    )
    st.session_state[f"{P}_results"] = {
        "curves": curves,
        "winners": wm.n_winners,
        "units": wm.n_units,
    }
    d1, d2, d3 = st.columns(3)
    stem = f"patterns-{name}-{layer}"
    csv_text = records_to_csv(curve_records(curves))
    ui.download(d1, "Curves CSV", csv_text, f"{stem}.csv", key=f"{P}_dl_csv")
    result = {"model": name, "image": image.source} | patterns_export(
        wm, curves=curves, changes=changes, profiles=profiles
    )
    settings = {"layer": layer, "eps": eps, "ratios": tuple(ratios) if is_kwta else (),
                "n_dirs": n_dirs, "seed": seed}  # fmt: skip
    ui.result_downloads(
        (d2, d3),
        result,
        ui.provenance("patterns", settings, model=(name, sha), image=image.ref),
        (wm, changes),
        model,
        stem,
        label="Patterns JSON",
        key=f"{P}_dl",
    )
else:
    st.info("Press **Compute patterns** for the winner map and the pattern-change curves.")

ui.sync_url(run=1 if show else None)
