"""Lesson: the paper's argument and its rebuttal in six steps, for a classroom.

Each step: a short text, one result that appears at once (read from
``pretrained/lesson.json``, written by ``kwta lesson``; computed once and cached
when that file does not match the models), a question for the class, and a
link that opens the full page with the same settings. Steps are addressable by
URL (``?les_step=3``) so a presenter can jump.
"""

from __future__ import annotations

from typing import Any

import cached
import figures
import numpy as np
import streamlit as st
import ui

from kwta import paper
from kwta.analysis.toy import ToyFit
from kwta.data import CIFAR10_CLASSES, cifar10_sample
from kwta.explorer import jobs
from kwta.explorer.adaptive import robustness_rows
from kwta.explorer.demo import activation_demo, random_vector
from kwta.explorer.lesson import STEPS, image_params, page_link, read_lesson
from kwta.zoo.hub import pretrained_dir
from kwta.zoo.summary import default_pair

P = "les"
N = len(STEPS)

st.markdown(
    """
<style>
[data-testid="stMainBlockContainer"] p {font-size: 1.25rem;}
</style>
""",
    unsafe_allow_html=True,  # a fixed style written here (projector-readable text), no user input
)


cards = ui.require_models() or {}
if not cards:
    st.stop()
relu_name, kwta_name = default_pair(cards)
if relu_name is None or kwta_name is None:
    st.warning("The lesson needs a ReLU and a k-WTA model in the zoo.")
    st.stop()

# ------------------------------------------------------------------ sidebar inputs
sb = st.sidebar
sb.header("Lesson")
ui.init_state(f"{P}_step", 1, lo=1, hi=N)
sb.radio(
    "Step",
    list(range(1, N + 1)),
    key=f"{P}_step",
    format_func=lambda i: f"{i}. {STEPS[i - 1].title}",
)
ui.show_notices()
step_no = int(st.session_state[f"{P}_step"])
step = STEPS[step_no - 1]


def _go(delta: int) -> None:
    st.session_state[f"{P}_step"] = min(N, max(1, int(st.session_state[f"{P}_step"]) + delta))


# ------------------------------------------------------------------ the step
st.caption(f"Lesson · step {step_no} of {N} · {step.source}")
st.title(step.title)
st.markdown(step.text)

pair = {"relu": cards[relu_name], "kwta": cards[kwta_name]}
lesson: dict[str, Any] | None = None
if step.key in ("jumps", "pgd", "landscape", "training"):
    lesson = read_lesson(pretrained_dir(), pair)
    if lesson is None:  # no file for these weights: compute once, then every session shares it
        st.info(
            "The lesson's results for these models are not precomputed (run `kwta lesson`); "
            "computing them once — every later visit is instant."
        )
        try:
            lesson = ui.run_with_progress(
                lambda sink: cached.run_lesson(
                    relu_name, pair["relu"]["sha256"], kwta_name, pair["kwta"]["sha256"], sink
                ),
                label="Computing the lesson's results",
                capped=False,  # computed once, then every session shares it
            )
        except jobs.JobError as err:  # cancelled (the tab went away) or out of memory
            st.error(f"The lesson's results could not be computed: {err}", icon=":material/error:")
            st.stop()

labels = {"relu": f"{relu_name} (ReLU)", "kwta": f"{kwta_name} (k-WTA)"}
link_params: dict[str, Any] = {}
walk_params: dict[str, Any] = {}
if step.key == "what":
    demo = activation_demo(random_vector(12, 0), ratio=0.25, group_size=2)
    ui.chart(figures.activation_demo_figure(demo), key=f"{P}_fig")
    link_params = {"ov_n": 12, "ov_seed": 0, "ov_gamma": 0.25, "ov_group": 2}
elif lesson is not None and step.key == "jumps":
    fit = ToyFit.from_dict(lesson["toy"])
    ui.chart(figures.toy_fit_figure(fit), key=f"{P}_fig")
    st.caption(
        f"{len(fit.kwta_jumps)} jumps in the k-WTA fit, {len(fit.relu_jumps)} in the ReLU fit "
        f"(γ = {fit.ratio:g}, {len(fit.x_train)} training points)."
    )
    s = lesson["settings"]["toy"]
    link_params = {
        "toy_n": s["n_points"],
        "toy_width": s["width"],
        "toy_depth": s["depth"],
        "toy_gamma": s["ratio"],
        "toy_seed": s["seed"],
        "toy_steps": s["steps"],
        "run": 1,
    }
elif lesson is not None and step.key == "pgd":
    img = lesson["image"]
    cols = st.columns(2)
    for col, key in zip(cols, ("relu", "kwta"), strict=True):
        run = lesson["pgd"][key]
        logits = np.asarray(run["logits"])
        with col:
            ui.chart(
                figures.logit_trace_figure(
                    logits, np.asarray(run["linf"]), img["label"], title=labels[key]
                ),
                key=f"{P}_fig_{key}",
            )
            final = int(run["pred"][-1])
            verdict = "still correct" if final == img["label"] else "fooled"
            st.markdown(
                f"After {len(run['pred']) - 1} steps: **{CIFAR10_CLASSES[final]}** ({verdict})."
            )
    st.caption(
        f"Bundled test image #{img['index']} ({CIFAR10_CLASSES[img['label']]}): {img['rule']}. "
        "On most images PGD fools a naturally trained k-WTA network too at this ε (the paper's "
        "Table 1: 13 % robust accuracy for k-WTA-0.1); what every image shows is the jitter."
    )
    s = lesson["settings"]["pgd"]
    link_params = {
        "atk_a": relu_name,
        "atk_b": kwta_name,
        **image_params("atk", cifar10_sample("test"), img["index"]),
        "atk_eps": s["eps"],
        "atk_steps": s["steps"],
        "atk_alpha": s["alpha"],
        "run": 1,
    }
elif lesson is not None and step.key == "landscape":
    img = lesson["image"]
    grids = {k: lesson["landscape"][k] for k in ("relu", "kwta")}
    lo = min(float(np.min(g["loss"])) for g in grids.values())
    hi = max(float(np.max(g["loss"])) for g in grids.values())
    cols = st.columns(2)
    for col, (key, g) in zip(cols, grids.items(), strict=True):
        with col:
            ui.chart(
                figures.landscape_surface(
                    g["e1"], g["e2"], np.asarray(g["loss"]), title=labels[key], zrange=(lo, hi)
                ),
                key=f"{P}_fig_{key}",
            )
    s = lesson["settings"]["landscape"]
    walk_params = {  # the same image on the Attack path page: PGD's walk on its own plane
        "path_a": relu_name,
        "path_b": kwta_name,
        **image_params("path", cifar10_sample("test"), img["index"]),
        "run": 1,
    }
    link_params = {
        "ls_models": [relu_name, kwta_name],
        **image_params("ls", cifar10_sample("test"), img["index"]),
        "ls_grid": s["grid"],
        "ls_span": s["span"],
        "ls_seed": s["seed"],
        "run": 1,
    }
elif lesson is not None and step.key == "training":
    lines = {labels[k]: lesson["weight_line"][k] for k in ("relu", "kwta")}
    ui.chart(figures.weight_line_figure(lines), key=f"{P}_fig")
    n = lesson["settings"]["weight_line"]["n"]
    st.caption(
        f"Mean cross-entropy of {n} test images at w + α·d, d the batch gradient direction "
        "normalised filter by filter (as in Li et al., 2018)."
    )
    link_params = {"ls_models": [relu_name, kwta_name], "ls_wl": 1, "run": 1}
elif step.key == "adaptive":
    rows = [r for r in robustness_rows(cards) if r.name in (relu_name, kwta_name)] or [
        r for r in robustness_rows(cards) if r.adaptive is not None
    ]
    ui.chart(figures.robustness_bars(rows), key=f"{P}_fig")
    st.caption(
        f"Robust accuracy at ε = {paper.EPS}: the paper's PGD (Table 1), ours on the adaptive "
        "subset, and the worst case over Auto-PGD, Square, finite-difference and EOT PGD and "
        "the transfer from the ReLU twin (the model cards; `kwta evaluate --adaptive`)."
    )
    link_params = {"adv_m": kwta_name}

st.info(f"**Question for the class.** {step.question}", icon=":material/forum:")

c1, c2, c3 = st.columns([1, 1, 2])
c1.button(
    "Previous", key=f"{P}_prev", on_click=_go, args=(-1,), disabled=step_no == 1,
    icon=":material/arrow_back:",
)  # fmt: skip
c2.button(
    "Next", key=f"{P}_next", on_click=_go, args=(1,), disabled=step_no == N, type="primary",
    icon=":material/arrow_forward:",
)  # fmt: skip
if link_params:
    c3.link_button(
        "Try it yourself: open the full page",
        page_link(step.page, link_params),
        icon=":material/open_in_new:",
    )
if walk_params:
    c3.link_button(
        "Where PGD goes on this surface: the attack's path",
        page_link("attack_path", walk_params),
        icon=":material/route:",
    )

ui.sync_url()
