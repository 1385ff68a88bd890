"""Attack path: where PGD goes on the loss surface, step by step, ReLU beside k-WTA (Sec. 3)."""

from __future__ import annotations

import cached
import figures
import streamlit as st
import ui
from torch import nn

from kwta import paper
from kwta.data import CIFAR10_CLASSES
from kwta.explorer import estimates, jobs
from kwta.explorer.paths import DEFAULT_GRID, AttackPath, path_records
from kwta.explorer.runs import records_to_csv

P = "path"
#: PGD steps by default (App. D.1 evaluates with 40 steps of 0.003).
DEFAULT_STEPS = 40
#: Largest plane on this page (61² forward passes per model).
MAX_PATH_GRID = 61

st.title("Attack path: where PGD goes")
st.markdown(
    "PGD walks on the attacker's loss surface. Here the surface is cut along the **plane that "
    "holds the walk**: through the clean image, spanned by the attack's end point δ_T (to the "
    "right) and a second direction (up), so the whole walk can be drawn on it — every step "
    "projected, the ε-box dotted. On a **ReLU** network the surface is smooth and the walk "
    "climbs it; on a **k-WTA** network it is shattered — a tiny step swaps winners and the "
    "loss jumps (Sec. 3) — so the gradient at one point says little about the next and the "
    "walk stalls. Move the step slider to follow both walks and watch the logits and the "
    "share of the activation pattern that has changed."
)

cards = ui.require_models() or {}
if not cards:
    st.stop()

# ------------------------------------------------------------------ sidebar inputs
sb = st.sidebar
sb.header("Models")
selected = ui.model_pair(P, cards)
sb.header("Image")
image = ui.image_picker(P)
sb.header("PGD and the plane")
ui.init_state(f"{P}_eps", paper.EPS, lo=0.001, hi=0.1)
ui.init_state(f"{P}_steps", DEFAULT_STEPS, lo=1, hi=100_000)
ui.init_state(f"{P}_alpha", 0.003, lo=0.0001, hi=0.05)
ui.init_state(f"{P}_rs", False)
ui.init_state(f"{P}_second", "gradient", choices=["gradient", "random"])
ui.init_state(f"{P}_grid", DEFAULT_GRID, lo=3, hi=10_000)
ui.init_state(f"{P}_seed", 0, lo=0, hi=10**9)
sb.slider("ε (L∞ radius)", 0.001, 0.1, step=0.001, format="%.3f", key=f"{P}_eps")
sb.number_input(f"Steps (≤ {ui.MAX_STEPS})", 1, 100_000, key=f"{P}_steps")
sb.number_input("Step size α", 0.0001, 0.05, step=0.0005, format="%.4f", key=f"{P}_alpha")
sb.toggle("Random start", key=f"{P}_rs", help="The walk then starts away from x")
sb.radio(
    "The plane's second direction",
    ["gradient", "random"],
    key=f"{P}_second",
    format_func={"gradient": "gradient sign at x", "random": "random ±1"}.__getitem__,
)
sb.number_input(f"Points per axis (≤ {MAX_PATH_GRID})", 3, 10_000, key=f"{P}_grid")
sb.number_input("Seed (start, random direction)", 0, 10**9, key=f"{P}_seed")
precision = ui.precision_picker(P, "attack_path")
ui.show_notices()

eps = float(st.session_state[f"{P}_eps"])
alpha = float(st.session_state[f"{P}_alpha"])
steps = ui.capped(int(st.session_state[f"{P}_steps"]), ui.MAX_STEPS, "Steps")
grid = ui.capped(int(st.session_state[f"{P}_grid"]), MAX_PATH_GRID, "Points per axis")
random_start = bool(st.session_state[f"{P}_rs"])
second = str(st.session_state[f"{P}_second"])
seed = int(st.session_state[f"{P}_seed"])

st.caption(
    f"Image: {image.caption}. PGD: ε = {eps:g}, {steps} steps of α = {alpha:g}, cross-entropy, "
    f"{'random' if random_start else 'no random'} start. Plane: {grid}×{grid} points."
)
step_s = ui.unit_seconds(selected, image.pixels, estimates.gradient_step_seconds)
image_s = ui.unit_seconds(selected, image.pixels, estimates.forward_image_seconds)
if len(step_s) == len(image_s) and step_s:
    ui.expected_time(estimates.path_estimate(step_s, image_s, steps, grid))
settings = {
    "eps": eps,
    "alpha": alpha,
    "steps": steps,
    "random_start": random_start,
    "seed": seed,
    "second": second,
    "grid": grid,
    "precision": precision,
}
params = {
    "models": tuple(selected),
    "pixels": image.pixels.tobytes(),
    "label": image.label,
    **settings,
}
clicked = st.button("Trace the walks", type="primary", key=f"{P}_run", icon=":material/play_arrow:")
light = steps <= DEFAULT_STEPS and grid <= DEFAULT_GRID and len(selected) <= 2
show = ui.remember_run(f"{P}_ran", params, clicked, light=light)

paths: dict[str, AttackPath] = {}
if show:
    for name in selected:
        model = ui.get_model(name)
        if model is None:
            continue
        sha = str(cards[name].get("sha256", ""))

        def work(
            sink: jobs.ProgressSink, name: str = name, sha: str = sha, model: nn.Module = model
        ) -> AttackPath:
            return cached.run_path(
                name, sha, image.pixels, image.label, settings, _model=model, _progress=sink
            )

        try:
            paths[name] = ui.run_with_progress(work, label=f"{name}: PGD and its plane")
        except (ValueError, jobs.JobError) as err:
            st.error(f"{name}: {err}", icon=":material/error:")

if paths:
    ui.init_state(f"{P}_step", steps, lo=0, hi=steps)
    step = int(st.slider("Step (0: the clean image)", 0, steps, key=f"{P}_step"))
    for col, (name, p) in zip(st.columns(len(paths)), paths.items(), strict=False):
        with col:
            st.subheader(ui.model_label(cards, name))
            plane = p.plane.to_dict()
            ui.chart(figures.path_heatmap(plane, step, title="loss on the walk's plane"),
                     key=f"{P}_heat_{name}")  # fmt: skip
            ui.chart(figures.path_surface(plane, step, title="the same, as a surface"),
                     key=f"{P}_surf_{name}")  # fmt: skip
            pred = int(p.run.trace.pred[step, 0])
            ui.chart(
                figures.step_logits_figure(
                    p.logits(step).tolist(), p.run.label,
                    title=f"logits at step {step}: {CIFAR10_CLASSES[pred]}",
                ),
                key=f"{P}_logits_{name}",
            )  # fmt: skip
            m1, m2, m3 = st.columns(3)
            m1.metric("pattern changed vs x", f"{float(p.changed[step]):.1%}",
                      help="share of the winners (k-WTA) or active units (ReLU) that differ "
                      "from the clean image's, all activation layers together")  # fmt: skip
            m2.metric("loss at the step", f"{float(p.plane.path_loss[step]):.3f}",
                      f"projected: {float(p.plane.projected_loss[step]):.3f}",
                      delta_color="off", delta_arrow="off")  # fmt: skip
            m3.metric("off the plane (‖·‖∞)", f"{float(p.plane.off_plane[step]):.4f}")
            ui.attack_verdict(p.run)
            stem = f"path-{name}-{image.source.replace(' ', '').replace('#', '')}"
            d1, d2, d3 = st.columns(3)
            ui.download(d1, "Path CSV", records_to_csv(path_records(p)), f"{stem}.csv",
                        key=f"{P}_dl_csv_{name}")  # fmt: skip
            sha = str(cards[name].get("sha256", ""))
            ui.result_downloads(
                (d2, d3),
                p.to_dict() | {"model": name, "image": image.source},
                ui.provenance("attack_path", settings, model=(name, sha), image=image.ref),
                p,
                ui.get_model(name),
                stem,
                label="Plane and path JSON",
                key=f"{P}_dl_{name}",
            )
    st.caption(
        "The walk is drawn at each step's projection onto the plane; the loss at the real step "
        "beside the loss at its projection, and how far the step leaves the plane, say how "
        "faithful the picture is. Pattern changed: Sec. 3 — for k-WTA, the share of winners "
        "swapped from the clean image's; a small ε already swaps many (Theorem 1)."
    )
    st.session_state[f"{P}_results"] = {
        n: {"step": step, "changed": float(p.changed[step]), "pred": int(p.run.trace.pred[step, 0])}
        for n, p in paths.items()
    }
elif not show:
    st.info("Choose two models and an image, then press **Trace the walks**.")

ui.sync_url(run=1 if show else None)
