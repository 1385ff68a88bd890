"""Is k-WTA really robust? Standard PGD beside an adaptive attack, masking checks, the zoo table."""

from __future__ import annotations

from typing import Any

import cached
import figures
import streamlit as st
import ui

from kwta import paper
from kwta.explorer import estimates, jobs
from kwta.explorer.actions import ADAPTIVE_BUDGET
from kwta.explorer.adaptive import (
    ESTIMATORS,
    budget_schedule,
    margin_curve,
    robustness_caption,
    robustness_rows,
    robustness_table,
)
from kwta.explorer.runs import AttackRun
from kwta.zoo.compare import published_adaptive_table
from kwta.zoo.summary import default_pair, twin_of

P = "adv"
#: The adaptive attack's query budget by default; a link runs at most this much by itself.
DEFAULT_BUDGET = min(ADAPTIVE_BUDGET, ui.MAX_QUERIES)
PGD_ALPHA = 0.003  # App. D.1


st.title("Is k-WTA really robust?")
st.markdown(
    "The paper measures k-WTA against **standard** gradient attacks, whose gradients k-WTA's "
    "jumps make useless. Later work attacked it **adaptively**: Tramèr, Carlini, Brendel and "
    "Madry (NeurIPS 2020) *estimate* the gradient from forward passes at Gaussian neighbours "
    "(finite differences), which follows the trend of the loss across the jumps, and broke an "
    "adversarially trained k-WTA ResNet-18 down to **0.16 %** robust accuracy; AutoAttack "
    "found 18.5 % where 52.4 % had been reported. Run both attacks on one image below, check "
    "the model for the symptoms of gradient masking, and compare the whole zoo."
)

cards = ui.require_models() or {}
if not cards:
    st.stop()
_, kwta_default = default_pair(cards)

# ------------------------------------------------------------------ sidebar inputs
sb = st.sidebar
sb.header("Model")
ui.model_picker(f"{P}_m", cards, kwta_default)
sb.header("Image")
image = ui.image_picker(P)
sb.header("Attacks")
ui.init_state(f"{P}_eps", paper.EPS, lo=0.0, hi=0.1)
ui.init_state(f"{P}_pgd_steps", 40, lo=1, hi=100_000)
ui.init_state(f"{P}_est", "fd", choices=list(ESTIMATORS))
ui.init_state(f"{P}_steps", 20, lo=1, hi=100)
ui.init_state(f"{P}_alpha", 0.005, lo=0.0005, hi=0.05)
ui.init_state(f"{P}_sigma", 8.0, lo=0.5, hi=32.0)
ui.init_state(f"{P}_budget", DEFAULT_BUDGET, lo=1, hi=10**9)
ui.init_state(f"{P}_seed", 0, lo=0, hi=10**9)
ui.init_state(f"{P}_n", 32, lo=8, hi=128)
sb.slider("ε (L∞ radius)", 0.0, 0.1, step=0.001, format="%.3f", key=f"{P}_eps")
sb.number_input(
    f"Standard PGD steps (of {PGD_ALPHA}, ≤ {ui.MAX_STEPS})", 1, 100_000, key=f"{P}_pgd_steps"
)
sb.radio(
    "Adaptive attack's gradient",
    list(ESTIMATORS),
    key=f"{P}_est",
    format_func=ESTIMATORS.__getitem__,
)
sb.number_input("Adaptive steps", 1, 100, key=f"{P}_steps")
sb.number_input("Adaptive step size α", 0.0005, 0.05, step=0.0005, format="%.4f", key=f"{P}_alpha")
sb.number_input("σ of the Gaussian samples (× 1/255)", 0.5, 32.0, step=0.5, key=f"{P}_sigma")
sb.number_input(
    f"Query budget per image (≤ {ui.MAX_QUERIES:,})",
    1,
    10**9,
    key=f"{P}_budget",
    help="Model evaluations the adaptive attack may spend; the samples per step grow "
    "tenfold over the run (Tramèr et al. grow 100 → 20 000), fitted to this budget.",
)
sb.number_input("Seed", 0, 10**9, key=f"{P}_seed")
sb.header("Masking check")
sb.slider("Test images", 8, 128, step=8, key=f"{P}_n")
ui.show_notices()

name = str(st.session_state[f"{P}_m"])
eps = float(st.session_state[f"{P}_eps"])
pgd_steps = ui.capped(int(st.session_state[f"{P}_pgd_steps"]), ui.MAX_STEPS, "PGD steps")
estimator = str(st.session_state[f"{P}_est"])
steps = int(st.session_state[f"{P}_steps"])
alpha = float(st.session_state[f"{P}_alpha"])
sigma = float(st.session_state[f"{P}_sigma"]) / 255.0
budget = ui.capped(
    int(st.session_state[f"{P}_budget"]),
    ui.MAX_QUERIES,
    "Query budget",
    why="on this shared server ($KWTA_MAX_QUERIES)",
)
seed = int(st.session_state[f"{P}_seed"])
n_check = int(st.session_state[f"{P}_n"])
sha = str(cards[name].get("sha256", ""))

samples: tuple[int, int] | None
try:
    samples = budget_schedule(budget, steps, estimator="eot" if estimator == "eot" else "fd")
except ValueError as err:  # the rest of the page (masking check, zoo table) still renders
    samples = None
    budget_error = f"{err}."

# ------------------------------------------------------------------ one image, two attacks
st.header("One image, two attacks")
st.caption(
    f"Image: {image.caption}. Standard PGD: {pgd_steps} steps of {PGD_ALPHA}, random start, "
    f"cross-entropy (the paper's App. D.1). Adaptive: {steps} steps of {alpha:g} on the margin "
    f"loss, gradient from {ESTIMATORS[estimator]}, σ = {sigma * 255:g}/255, "
    + (f"{samples[0]} → {samples[1]} samples per step, " if samples else "")
    + f"at most {budget:,} queries; it stops as "
    f"soon as the image is misclassified. ε = {eps:g} for both."
)
settings = {  # the paper's PGD (App. D.1): random start, CE; the adaptive attack
    "standard": {"eps": eps, "alpha": PGD_ALPHA, "steps": pgd_steps, "loss": "ce",
                 "random_start": True, "seed": seed},
    "adaptive": {"estimator": estimator, "eps": eps, "alpha": alpha, "steps": steps,
                 "sigma": sigma, "samples": samples, "seed": seed},
}  # fmt: skip
params = {"m": name, "pixels": image.pixels.tobytes(), "budget": budget, **settings}
if samples is None:
    st.error(budget_error, icon=":material/error:")
query_s = ui.unit_seconds([name], image.pixels, estimates.forward_image_seconds)
ui.expected_time(estimates.query_estimate(query_s[0], budget) if query_s else None)
clicked = st.button(
    "Run both attacks",
    type="primary",
    key=f"{P}_run",
    icon=":material/play_arrow:",
    disabled=samples is None,
)
light = budget <= DEFAULT_BUDGET and steps <= 20 and pgd_steps <= 40
show = samples is not None and ui.remember_run(f"{P}_ran", params, clicked, light=light)
model = ui.get_model(name) if show else None
results: dict[str, AttackRun] = {}
if show and model is not None:
    left, right = st.columns(2)

    def standard(sink: jobs.ProgressSink) -> AttackRun:
        return cached.run_attack(
            name, sha, image.pixels, image.label, settings["standard"], _model=model,
            _progress=sink,
        )  # fmt: skip

    def adaptive(sink: jobs.ProgressSink) -> AttackRun:
        return cached.run_adaptive(
            name, sha, image.pixels, image.label, settings["adaptive"], _model=model,
            _progress=sink,
        )  # fmt: skip

    jobs_to_run = [
        (left, "standard", f"Standard PGD on {name}", standard),
        (right, "adaptive", f"Adaptive PGD on {name}", adaptive),
    ]
    for col, key, label, work in jobs_to_run:
        with col:
            st.subheader("Standard PGD (paper)" if key == "standard" else "Adaptive attack")
            try:
                run = ui.run_with_progress(work, label=label)
            except (ValueError, jobs.JobError) as err:
                st.error(f"The attack could not run: {err}")
                continue
            results[key] = run
            ui.chart(
                figures.logit_trace_figure(
                    run.trace.logits[:, 0].numpy(),
                    run.trace.linf[:, 0].numpy(),
                    run.label,
                    x_axis="step",
                    title=f"{name}: logits, {label.split(' on ')[0].lower()}",
                ),
                key=f"{P}_logits_{key}",
            )
            ui.attack_images(run, eps, clean=False)
            ui.attack_verdict(run)
            stem = f"{key}-{name}-{image.source.replace(' ', '').replace('#', '')}-eps{eps:g}"
            ui.run_downloads(
                run, "attack" if key == "standard" else "adaptive", settings[key], name=name,
                sha=sha, image=image, model=model, stem=stem, key=f"{P}_dl_{key}",
            )  # fmt: skip
    if results:
        names = {"standard": "standard PGD", "adaptive": f"adaptive ({estimator})"}
        curves = {names[k]: margin_curve(r.trace) for k, r in results.items()}
        title = "The attacker's margin per step (above 0: misclassified)"
        ui.chart(figures.margin_figure(curves, title=title), key=f"{P}_margins")
    st.session_state[f"{P}_results"] = {
        k: {"success": r.success, "queries": r.queries, "steps": r.steps, "attack": r.attack}
        for k, r in results.items()
    }
else:
    st.info("Choose a model, an image and the budgets, then press **Run both attacks**.")

# ------------------------------------------------------------------ masking indicators
st.header("Symptoms of gradient masking")
twin = twin_of(cards, name)
check = [name] + ([twin] if twin is not None else [])
st.caption(
    f"Measured on {n_check} class-balanced test images (the correctly classified ones), for "
    f"{name}" + (f" and its ReLU twin {twin}" if twin else "") + ". A flag means: do not trust "
    "standard attacks on this model — test it adaptively."
)
check_clicked = st.button("Check for masking", key=f"{P}_check", icon=":material/troubleshoot:")
check_params = {"models": tuple(check), "n": n_check, "eps": eps, "seed": seed}
if ui.remember_run(f"{P}_checked", check_params, check_clicked, from_link=False):
    reports: dict[str, dict[str, Any]] = {}
    for col, m_name in zip(st.columns(len(check)), check, strict=True):
        with col:
            st.subheader(ui.model_label(cards, m_name))
            m = ui.get_model(m_name)
            if m is None:
                continue
            m_sha = str(cards[m_name].get("sha256", ""))
            try:
                rep = ui.run_with_progress(
                    lambda sink, m_name=m_name, m_sha=m_sha, m=m: cached.run_masking(
                        m_name, m_sha, n_check, eps, seed, _model=m, _progress=sink
                    ),
                    label=f"Masking check on {m_name}",
                )
            except (ValueError, jobs.JobError) as err:
                st.error(f"The check could not run: {err}")
                continue
            reports[m_name] = rep.to_dict()
            ui.masking_report(reports[m_name])
            ui.masking_downloads(rep, name=m_name, sha=m_sha, model=m, seed=seed, n=n_check,
                                 key=f"{P}_dl_masking_{m_name}")  # fmt: skip
    st.session_state[f"{P}_reports"] = reports

# ------------------------------------------------------------------ zoo-wide table
st.header("The zoo: paper-reported vs standard PGD vs adaptive")
rows = robustness_rows(cards)
st.dataframe(robustness_table(rows), hide_index=True, key=f"{P}_zoo")
st.caption(robustness_caption(rows))
st.subheader("Published adaptive attacks on k-WTA")
st.dataframe(published_adaptive_table(), hide_index=True, key=f"{P}_published")

ui.sync_url(run=1 if show else None)
