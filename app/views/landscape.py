"""Loss landscape: the attacker's loss around one image (Fig. 5; App. D.5, Fig. 7)."""

from __future__ import annotations

import cached
import figures
import streamlit as st
import ui
from torch import nn

from kwta.analysis.landscape import Landscape
from kwta.analysis.weights import WeightLine
from kwta.explorer import estimates, jobs
from kwta.explorer.runs import landscape_to_csv
from kwta.zoo.summary import display_order, landscape_selection, summarize_card

P = "ls"
#: The paper's grid (Fig. 5). On a CPU a coarser (odd, so x itself is the centre) grid
#: keeps the page at seconds: a width-64 ResNet-18 needs ~5 s for 21×21 on two cores.
DEFAULT_GRID = 50 if ui.ON_GPU else 21


st.title("Loss landscape (Fig. 5, Fig. 7)")
st.markdown(
    "The attacker's loss at `x + ε1·g1 + ε2·g2`, where `g1` is the sign of the loss gradient at "
    "the image `x` and `g2` a random ±1 direction (after Tramèr et al., 2017). A ReLU "
    "network's surface is smooth, so following the gradient climbs it; a k-WTA network's is "
    "rugged and spiky, so the gradient at one point says little about the next. Adversarial "
    "training compresses the range of the loss, but a k-WTA surface stays spiky."
)

cards = ui.require_models() or {}
if not cards:
    st.stop()
names = list(cards)

# ------------------------------------------------------------------ sidebar inputs
sb = st.sidebar
sb.header("Models")
# Fig. 5's four panels on a GPU; on a CPU the naturally trained pair (add more at will).
default_models = landscape_selection(cards)
ui.init_state(
    f"{P}_models", default_models if ui.ON_GPU else default_models[:2], choices=names, max_items=4
)
sb.multiselect(
    "Models (up to 4)",
    names,
    key=f"{P}_models",
    max_selections=4,
    format_func=lambda n: ui.model_label(cards, n),
)
sb.header("Image")
image = ui.image_picker(P)
sb.header("Grid")
ui.init_state(f"{P}_grid", DEFAULT_GRID, lo=2, hi=10_000)
ui.init_state(f"{P}_span", 0.04, lo=0.001, hi=0.25)
ui.init_state(f"{P}_loss", "ce", choices=["ce", "margin"])
ui.init_state(f"{P}_seed", 0, lo=0, hi=10**9)
ui.init_state(f"{P}_sharedz", True)
sb.number_input(f"Points per axis (≤ {ui.MAX_GRID})", 2, 10_000, key=f"{P}_grid")
sb.slider("Range ±", 0.001, 0.25, step=0.001, format="%.3f", key=f"{P}_span")
sb.radio(
    "Loss",
    ["ce", "margin"],
    key=f"{P}_loss",
    horizontal=True,
    format_func={"ce": "cross-entropy", "margin": "margin"}.__getitem__,
)
sb.number_input("Seed of the random direction", 0, 10**9, key=f"{P}_seed")
sb.toggle("Same colour/z range for all models", key=f"{P}_sharedz")
ui.init_state(f"{P}_wl", False)
sb.toggle(
    "Also: loss along weight space (Fig. 3c)",
    key=f"{P}_wl",
    help=f"The mean loss of {cached.WEIGHT_BATCH} test images at w + α·d: smooth even for k-WTA",
)
ui.show_notices()

selected = [n for n in st.session_state[f"{P}_models"] if n in cards]
grid = ui.capped(int(st.session_state[f"{P}_grid"]), ui.MAX_GRID, "Grid size")
span = float(st.session_state[f"{P}_span"])
loss = str(st.session_state[f"{P}_loss"])
seed = int(st.session_state[f"{P}_seed"])
if not ui.ON_GPU:
    st.info(
        f"Running on the CPU: the default grid is {DEFAULT_GRID}×{DEFAULT_GRID} "
        f"({DEFAULT_GRID**2} forward passes per model) instead of the paper's 50×50, and two "
        "models are preselected instead of four, so the page answers in seconds. Raise the "
        "grid or add models in the sidebar if you can wait (50×50 takes ~6× longer).",
        icon=":material/speed:",
    )
st.caption(
    f"Image: {image.caption}. Grid {grid}×{grid} over ε1, ε2 ∈ [−{span:g}, {span:g}] "
    f"({grid * grid} forward passes per model), {'CE' if loss == 'ce' else 'margin'} loss."
)
if not selected:
    st.warning("Choose at least one model in the sidebar.")
settings = {"grid": grid, "span": span, "seed": seed, "loss": loss}
params = {
    "models": tuple(selected),
    "pixels": image.pixels.tobytes(),
    "label": image.label,
    **settings,
}
image_s = ui.unit_seconds(selected, image.pixels, estimates.forward_image_seconds)
ui.expected_time(estimates.landscape_estimate(image_s, grid) if image_s else None)
clicked = st.button(
    "Compute landscapes",
    type="primary",
    key=f"{P}_run",
    disabled=not selected,
    icon=":material/play_arrow:",
)
light = grid <= DEFAULT_GRID and len(selected) <= (4 if ui.ON_GPU else 2)
show = bool(selected) and ui.remember_run(f"{P}_ran", params, clicked, light=light)

if show:
    done: dict[str, Landscape] = {}
    for name in selected:
        model = ui.get_model(name)
        if model is None:
            continue
        sha = str(cards[name].get("sha256", ""))

        def work(
            sink: jobs.ProgressSink, name: str = name, sha: str = sha, model: nn.Module = model
        ) -> Landscape:
            return cached.run_landscape(
                name, sha, image.pixels, image.label, settings, _model=model, _progress=sink
            )

        try:
            done[name] = ui.run_with_progress(work, label=f"{name}: {grid}×{grid} grid")
        except (ValueError, jobs.JobError) as err:
            st.error(f"{name}: {err}", icon=":material/error:")
    zrange = None
    if st.session_state[f"{P}_sharedz"] and done:
        zrange = (
            min(float(ls.loss.min()) for ls in done.values()),
            max(float(ls.loss.max()) for ls in done.values()),
        )
    summaries = {n: summarize_card(cards[n]) for n in done}
    rows: dict[str, list[str]] = {}
    for n in sorted(done, key=lambda n: display_order(summaries[n])):
        rows.setdefault(summaries[n].method_label, []).append(n)
    st.session_state[f"{P}_results"] = {n: ls.to_dict(directions=False) for n, ls in done.items()}
    for method_label, row in rows.items():
        st.subheader(f"Training: {method_label}")
        cols = st.columns(max(2, len(row)))
        for col, name in zip(cols, row, strict=False):
            ls = done[name]
            s = summaries[name]
            title = f"{name} ({s.activation_label})"
            e1, e2, z = ls.e1.tolist(), ls.e2.tolist(), ls.loss.numpy()
            with col:
                st.markdown(f"**{title}**")
                ui.chart(
                    figures.landscape_surface(e1, e2, z, title="3-D surface", zrange=zrange),
                    key=f"{P}_surf_{name}",
                )
                ui.chart(
                    figures.landscape_heatmap(e1, e2, z, title="heat map", zrange=zrange),
                    key=f"{P}_heat_{name}",
                )
                st.caption(
                    f"loss at x: {ls.clean_loss:.4f} · range {float(z.min()):.4f} … "
                    f"{float(z.max()):.4f} · roughness along ε1 {ls.roughness(0):.3f}, "
                    f"along ε2 {ls.roughness(1):.3f} (mean |2nd difference| / range)"
                )
                stem = f"landscape-{name}-{image.source.replace(' ', '').replace('#', '')}-g{grid}"
                d1, d2, d3 = st.columns(3)
                ui.download(
                    d1,
                    "Grid CSV",
                    landscape_to_csv(ls),
                    f"{stem}.csv",
                    key=f"{P}_dl_csv_{name}",
                )
                sha = str(cards[name].get("sha256", ""))
                ui.result_downloads(
                    (d2, d3),
                    ls.to_dict(directions=False) | {"model": name, "image": image.source},
                    ui.provenance("landscape", settings, model=(name, sha), image=image.ref),
                    ls,
                    ui.get_model(name),
                    stem,
                    label="Grid JSON",
                    key=f"{P}_dl_{name}",
                )
    if st.session_state[f"{P}_wl"]:
        st.header("Weight space (Fig. 3c): training is not harmed")
        st.markdown(
            "The attacker moves the *input* of one image; training moves the *weights* for a "
            "whole batch. Along a direction in weight space the batch loss of a k-WTA network "
            "is as smooth as a ReLU network's (Sec. 3, Theorem 2): a small weight change flips "
            "the winners of few inputs, and the batch average smooths those jumps."
        )
        lines: dict[str, WeightLine] = {}
        for name in done:
            model = ui.get_model(name)
            if model is None:
                continue
            sha = str(cards[name].get("sha256", ""))

            def wl_work(
                sink: jobs.ProgressSink, name: str = name, sha: str = sha, model: nn.Module = model
            ) -> WeightLine:
                return cached.run_weight_line(
                    name, sha, cached.WEIGHT_BATCH, _model=model, _progress=sink
                )

            lines[name] = ui.run_with_progress(wl_work, label=f"{name}: loss along weight space")
        ui.chart(
            figures.weight_line_figure(
                {f"{n} ({summarize_card(cards[n]).activation_label})": wl.to_dict()
                 for n, wl in lines.items()}
            ),
            key=f"{P}_weights",
        )  # fmt: skip
        buttons = st.columns(2 * max(1, len(lines)))
        for i, (name, wl) in enumerate(lines.items()):
            ui.result_downloads(
                (buttons[2 * i], buttons[2 * i + 1]),
                wl.to_dict() | {"model": name},
                ui.provenance("weights", {}, model=(name, str(cards[name].get("sha256", ""))),
                              batch=(cached.WEIGHT_BATCH, 0)),
                wl,
                ui.get_model(name),
                f"weightline-{name}-n{cached.WEIGHT_BATCH}",
                label=f"Weight line JSON ({name})",
                key=f"{P}_dl_wl_{name}",
            )  # fmt: skip
elif selected:
    st.info("Press **Compute landscapes** to evaluate the grid for the chosen models.")

ui.sync_url(run=1 if show else None)
