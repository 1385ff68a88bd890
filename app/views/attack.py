"""Live attack: PGD on one image, the 10 logits against the perturbation size (Fig. 3a/b)."""

from __future__ import annotations

from typing import Any

import cached
import figures
import streamlit as st
import ui
from torch import nn

from kwta import paper
from kwta.explorer import estimates, jobs
from kwta.explorer.runs import AttackRun

P = "atk"
#: PGD steps by default (App. D.1 evaluates with 40); a link runs at most this many by itself.
DEFAULT_STEPS = 40


st.title("Live attack (Fig. 3a/b)")
st.markdown(
    "Untargeted **PGD** (L∞) on one CIFAR-10 image. The chart draws the 10 logits against the "
    "size of the perturbation as the attack proceeds, one line per class, the true class "
    "thick. On a ReLU network the true logit slides down smoothly until another class takes "
    "over; on a k-WTA network the logits **jump** from step to step, because the gradient of "
    "one point says little about its neighbours — the attack often fails (that is gradient "
    "masking, not a proof of robustness)."
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
sb.header("PGD")
ui.init_state(f"{P}_eps", paper.EPS, lo=0.0, hi=0.1)
ui.init_state(f"{P}_steps", DEFAULT_STEPS, lo=0, hi=100_000)
ui.init_state(f"{P}_alpha", 0.001, lo=0.0001, hi=0.05)
ui.init_state(f"{P}_loss", "ce", choices=["ce", "margin"])
ui.init_state(f"{P}_rs", False)
ui.init_state(f"{P}_seed", 0, lo=0, hi=10**9)
ui.init_state(f"{P}_x", "linf", choices=["linf", "step"])
sb.slider("ε (L∞ radius)", 0.0, 0.1, step=0.001, format="%.3f", key=f"{P}_eps")
sb.number_input(f"Steps (≤ {ui.MAX_STEPS})", 0, 100_000, key=f"{P}_steps")
sb.number_input("Step size α", 0.0001, 0.05, step=0.0005, format="%.4f", key=f"{P}_alpha")
sb.radio(
    "Loss",
    ["ce", "margin"],
    key=f"{P}_loss",
    horizontal=True,
    format_func={"ce": "cross-entropy", "margin": "margin (C&W)"}.__getitem__,
)
sb.toggle("Random start", key=f"{P}_rs", help="PGD's uniform random start in the ε-ball")
sb.number_input("Seed (random start)", 0, 10**9, key=f"{P}_seed")
sb.radio(
    "x-axis",
    ["linf", "step"],
    key=f"{P}_x",
    horizontal=True,
    format_func={"linf": "‖δ‖∞", "step": "step"}.__getitem__,
)
precision = ui.precision_picker(P, "attack")
ui.show_notices()

eps = float(st.session_state[f"{P}_eps"])
alpha = float(st.session_state[f"{P}_alpha"])
steps = ui.capped(int(st.session_state[f"{P}_steps"]), ui.MAX_STEPS, "Steps")
loss = str(st.session_state[f"{P}_loss"])
random_start = bool(st.session_state[f"{P}_rs"])
seed = int(st.session_state[f"{P}_seed"])
x_axis = str(st.session_state[f"{P}_x"])

st.caption(
    f"Image: {image.caption}. PGD: ε = {eps:g}, {steps} steps of α = {alpha:g}, "
    f"{'CE' if loss == 'ce' else 'margin'} loss, "
    f"{'random' if random_start else 'no random'} start. "
    "The paper's Fig. 3 uses 100 steps; App. D.1 evaluates with 40 steps of 0.003 and a random "
    "start. A small α without random start spreads the trace over the x-axis."
)
settings = {
    "eps": eps,
    "alpha": alpha,
    "steps": steps,
    "loss": loss,
    "random_start": random_start,
    "seed": seed,
    "precision": precision,
}
params = {
    "models": tuple(selected),
    "image": image.source,
    "pixels": image.pixels.tobytes(),
    "label": image.label,
    **settings,
}
step_s = ui.unit_seconds(selected, image.pixels, estimates.gradient_step_seconds)
ui.expected_time(estimates.attack_estimate(step_s, steps) if step_s else None)
clicked = st.button("Run attack", type="primary", key=f"{P}_run", icon=":material/play_arrow:")
show = ui.remember_run(
    f"{P}_ran", params, clicked, light=steps <= DEFAULT_STEPS and len(selected) <= 2
)

results: dict[str, dict[str, Any]] = {}
if show:
    cols = st.columns(len(selected))
    for i, (col, name) in enumerate(zip(cols, selected, strict=True)):
        with col:
            st.subheader(ui.model_label(cards, name))
            model = ui.get_model(name)
            if model is None:
                continue
            chart = st.empty()
            title = f"{name}: logits during PGD"

            def on_update(
                payload: Any,
                chart: Any = chart,
                i: int = i,
                title: str = title,
                updates: list[int] = [0],  # noqa: B006 - one counter per model column
            ) -> None:
                logits, linf = payload
                updates[0] += 1
                ui.chart(
                    figures.logit_trace_figure(
                        logits, linf, image.label, x_axis=x_axis, title=title
                    ),
                    key=f"{P}_live_{i}_{updates[0]}",
                    where=chart,
                )

            sha = str(cards[name].get("sha256", ""))

            def work(
                sink: jobs.ProgressSink, name: str = name, sha: str = sha, model: nn.Module = model
            ) -> AttackRun:
                return cached.run_attack(
                    name, sha, image.pixels, image.label, settings, _model=model, _progress=sink
                )

            try:
                run = ui.run_with_progress(work, label=f"PGD on {name}", on_update=on_update)
            except jobs.JobTimeout as err:  # the live chart keeps the steps it made
                st.error(f"The attack was stopped: {err}. The chart shows the steps it made.")
                continue
            except (ValueError, jobs.JobError) as err:
                st.error(f"The attack could not run: {err}")
                continue
            logits = run.trace.logits[:, 0].numpy()
            linf = run.trace.linf[:, 0].numpy()
            ui.chart(
                figures.logit_trace_figure(logits, linf, run.label, x_axis=x_axis, title=title),
                key=f"{P}_trace_{i}",
                where=chart,
            )
            ui.attack_images(run, eps)
            ui.attack_predictions(run)
            ui.attack_verdict(run)
            ui.chart(
                figures.probs_figure(run.clean_probs.numpy(), run.adv_probs.numpy(), run.label),
                key=f"{P}_probs_{i}",
            )
            ui.attack_downloads(
                run, settings, name=name, sha=sha, image=image, model=model, key=f"{P}_dl_{i}"
            )
            results[name] = {
                "x_adv": run.x_adv.numpy(),
                "final_pred": int(run.trace.pred[-1, 0]),
                "adv_pred": run.adv_pred,
                "label": run.label,
                "steps": run.steps,
                "eps": run.eps,
                "success": run.success,
            }
    st.session_state[f"{P}_results"] = results
else:
    st.info("Choose models, an image and the attack's settings, then press **Run attack**.")

ui.sync_url(run=1 if show else None)
