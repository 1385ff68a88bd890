"""Live attack: PGD on one image, the 10 logits against the perturbation size (Fig. 3a/b)."""

from __future__ import annotations

import json
from typing import Any

import explorer_ui as ui
import figures
import numpy as np
import streamlit as st
from torch import nn

from kwta import paper
from kwta.data import CIFAR10_CLASSES
from kwta.explorer import estimates, jobs
from kwta.explorer.images import to_png_bytes
from kwta.explorer.runs import (
    AttackRun,
    amplify_perturbation,
    attack_with_trace,
    from_uint8,
    records_to_csv,
)
from kwta.zoo.summary import default_pair

P = "atk"
#: PGD steps by default (App. D.1 evaluates with 40); a link runs at most this many by itself.
DEFAULT_STEPS = 40
NONE = "(none)"


@st.cache_data(show_spinner=False, max_entries=64)
def run_attack(
    name: str,
    sha256: str,
    pixels: np.ndarray,
    label: int,
    eps: float,
    alpha: float,
    steps: int,
    loss: str,
    random_start: bool,
    seed: int,
    _model: nn.Module,
    _progress: jobs.ProgressSink | None = None,
) -> AttackRun:
    """PGD with a per-step trace, cached by model, image and every parameter (queued)."""

    def live(step: int, total: int, logits: Any, linf: Any) -> None:
        if _progress is not None:
            _progress(step, total, (logits.numpy(), linf.numpy()))

    return jobs.queued_job(
        lambda: attack_with_trace(
            _model,
            from_uint8(pixels),
            label,
            eps=eps,
            alpha=alpha,
            steps=steps,
            loss="margin" if loss == "margin" else "ce",
            random_start=random_start,
            seed=seed,
            callback=live,
        ),
        _progress,
    )


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
relu_default, kwta_default = default_pair(cards)

# ------------------------------------------------------------------ sidebar inputs
sb = st.sidebar
sb.header("Models")
ui.model_picker(f"{P}_a", cards, relu_default, label="Model A")
ui.model_picker(f"{P}_b", cards, kwta_default, label="Model B (side by side)", none=NONE)
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
ui.show_notices()

selected = [st.session_state[f"{P}_a"]]
if st.session_state[f"{P}_b"] not in (NONE, selected[0]):
    selected.append(st.session_state[f"{P}_b"])
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
params = {
    "models": tuple(selected),
    "image": image.source,
    "pixels": image.pixels.tobytes(),
    "label": image.label,
    "eps": eps,
    "alpha": alpha,
    "steps": steps,
    "loss": loss,
    "rs": random_start,
    "seed": seed,
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
                chart.plotly_chart(
                    figures.logit_trace_figure(
                        logits, linf, image.label, x_axis=x_axis, title=title
                    ),
                    key=f"{P}_live_{i}_{updates[0]}",
                )

            sha = str(cards[name].get("sha256", ""))

            def work(
                sink: jobs.ProgressSink, name: str = name, sha: str = sha, model: nn.Module = model
            ) -> AttackRun:
                return run_attack(
                    name,
                    sha,
                    image.pixels,
                    image.label,
                    eps,
                    alpha,
                    steps,
                    loss,
                    random_start,
                    seed,
                    _model=model,
                    _progress=sink,
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
            chart.plotly_chart(
                figures.logit_trace_figure(logits, linf, run.label, x_axis=x_axis, title=title),
                key=f"{P}_trace_{i}",
                config={"displaylogo": False},
            )
            c1, c2, c3 = st.columns(3)
            c1.image(to_png_bytes(run.x, scale=4), caption="clean", width="stretch")
            c2.image(to_png_bytes(run.x_adv, scale=4), caption="adversarial", width="stretch")
            c3.image(
                to_png_bytes(amplify_perturbation(run.x_adv, run.x, max(eps, 1e-12)), scale=4),
                caption=f"perturbation (grey = 0, ±ε = {eps:g} → black/white)",
                width="stretch",
            )
            clean_cls, adv_cls = CIFAR10_CLASSES[run.clean_pred], CIFAR10_CLASSES[run.adv_pred]
            m1, m2 = st.columns(2)
            m1.metric(
                "clean prediction",
                clean_cls,
                f"{run.clean_probs[run.clean_pred]:.1%} confident",
                delta_color="off",
                delta_arrow="off",
            )
            m2.metric(
                "after the attack",
                adv_cls,
                f"{run.adv_probs[run.adv_pred]:.1%} confident",
                delta_color="off",
                delta_arrow="off",
            )
            true_cls = CIFAR10_CLASSES[run.label]
            if run.clean_pred != run.label:
                st.warning(f"Already misclassified before the attack (true class: {true_cls}).")
            elif run.success:
                st.error(
                    f"**Attack succeeded**: {true_cls} → {adv_cls} (first misclassified at "
                    f"step {run.first_misclassified}, ‖δ‖∞ = {run.linf:.4f}).",
                    icon=":material/gpp_bad:",
                )
            else:
                st.success(
                    f"**Attack failed**: still {true_cls} after {steps} steps "
                    f"(‖δ‖∞ = {run.linf:.4f}).",
                    icon=":material/verified_user:",
                )
            png = to_png_bytes(run.x_adv)
            st.plotly_chart(
                figures.probs_figure(run.clean_probs.numpy(), run.adv_probs.numpy(), run.label),
                key=f"{P}_probs_{i}",
                config={"displaylogo": False},
            )
            d1, d2, d3 = st.columns(3)
            stem = f"pgd-{name}-{image.source.replace(' ', '').replace('#', '')}-eps{eps:g}"
            ui.download(
                d1,
                "Adversarial PNG",
                png,
                f"{stem}.png",
                key=f"{P}_dl_png_{i}",
            )
            ui.download(
                d2,
                "Trace CSV",
                records_to_csv(run.trace.to_records()),
                f"{stem}-trace.csv",
                key=f"{P}_dl_csv_{i}",
            )
            ui.download(
                d3,
                "Result JSON",
                json.dumps(
                    run.to_dict(classes=CIFAR10_CLASSES) | {"model": name, "image": image.source}
                ),
                f"{stem}.json",
                key=f"{P}_dl_json_{i}",
            )
            st.caption(
                "The PNG stores 8-bit pixels: rounding moves each pixel by up to 1/510, which can "
                "change a k-WTA network's prediction; the JSON holds the exact float image."
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

ui.sync_url(
    [
        f"{P}_a",
        f"{P}_b",
        *ui.image_url_keys(P),
        f"{P}_eps",
        f"{P}_steps",
        f"{P}_alpha",
        f"{P}_loss",
        f"{P}_rs",
        f"{P}_seed",
        f"{P}_x",
    ],
    run=1 if show else None,
)
