"""Result blocks: a chart with the app's settings; an attack's images, predictions, verdict
and downloads (the Live attack and the adaptive pages); a masking check's report and its
downloads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from torch import nn

from kwta.analysis.masking import MaskingReport
from kwta.data import CIFAR10_CLASSES
from kwta.explorer.images import to_png_bytes
from kwta.explorer.runs import AttackRun, amplify_perturbation, records_to_csv
from ui.downloads import download, provenance, result_downloads
from ui.images import PickedImage

#: Every chart's Plotly settings (no vendor logo in the mode bar).
CHART_CONFIG = {"displaylogo": False}


def chart(fig: go.Figure, *, key: str, where: Any = None) -> None:
    """``fig`` as an interactive chart, in ``where`` (a column or container; default: the page)."""
    (where if where is not None else st).plotly_chart(fig, key=key, config=CHART_CONFIG)


def attack_images(run: AttackRun, eps: float, *, clean: bool = True) -> None:
    """The clean image (unless ``clean`` is false), the adversarial one and the perturbation
    amplified so that ±ε is black/white, side by side."""
    shown = [(run.x, "clean")] if clean else []
    perturbation = amplify_perturbation(run.x_adv, run.x, max(eps, 1e-12))
    shown += [
        (run.x_adv, "adversarial"),
        (perturbation, f"perturbation (grey = 0, ±ε = {eps:g} → black/white)"),
    ]
    for col, (x, caption) in zip(st.columns(len(shown)), shown, strict=True):
        col.image(to_png_bytes(x, scale=4), caption=caption, width="stretch")


def attack_verdict(run: AttackRun) -> None:
    """Whether the attack changed the class: already wrong, succeeded (at which step, with
    what it spent) or failed; then what its steps ran in."""
    true_cls = CIFAR10_CLASSES[run.label]
    spent = f"‖δ‖∞ = {run.linf:.4f}"
    if run.queries is not None:
        spent += f", {run.queries:,} queries"
    if run.clean_pred != run.label:
        st.warning(f"Already misclassified before the attack (true class: {true_cls}).")
    elif run.success:
        st.error(
            f"**Attack succeeded**: {true_cls} → {CIFAR10_CLASSES[run.adv_pred]} (first "
            f"misclassified at step {run.first_misclassified}, {spent}).",
            icon=":material/gpp_bad:",
        )
    else:
        st.success(
            f"**Attack failed**: still {true_cls} after {run.steps} steps ({spent}).",
            icon=":material/verified_user:",
        )
    st.caption(precision_line(run.precision))


def attack_predictions(run: AttackRun) -> None:
    """The class before and after the attack, with the model's confidence in each."""
    m1, m2 = st.columns(2)
    for col, what, pred, probs in (
        (m1, "clean prediction", run.clean_pred, run.clean_probs),
        (m2, "after the attack", run.adv_pred, run.adv_probs),
    ):
        col.metric(
            what,
            CIFAR10_CLASSES[pred],
            f"{probs[pred]:.1%} confident",
            delta_color="off",
            delta_arrow="off",
        )


def precision_line(precision: str) -> str:
    """The one line under an attack's result: what its steps ran in, and that what it shows
    is fp32."""
    return (
        f"Steps computed in {precision} on channels-last inputs where the model allows; every "
        "number shown (logits, predictions, success, first misclassified step) is fp32."
    )


def run_downloads(
    run: AttackRun,
    action: str,
    settings: Mapping[str, Any],
    *,
    name: str,
    sha: str,
    image: PickedImage,
    model: nn.Module,
    stem: str,
    key: str,
    where: tuple[Any, Any] | None = None,
) -> None:
    """An attack run's JSON (the run, its provenance as page action ``action`` with
    ``settings``) and its Python script, in ``where`` (default: two new columns)."""
    result_downloads(
        where or st.columns(2),
        run.to_dict(classes=CIFAR10_CLASSES) | {"model": name, "image": image.source},
        provenance(action, settings, model=(name, sha), image=image.ref),
        run,
        model,
        stem,
        key=key,
    )


def attack_downloads(
    run: AttackRun,
    settings: Mapping[str, Any],
    *,
    name: str,
    sha: str,
    image: PickedImage,
    model: nn.Module,
    key: str,
) -> None:
    """The adversarial image (PNG), the trace (CSV), the whole run (JSON, with its
    provenance) and the same call as a script, named after model, image and ε."""
    stem = f"pgd-{name}-{image.source.replace(' ', '').replace('#', '')}-eps{run.eps:g}"
    d1, d2, d3, d4 = st.columns(4)
    download(d1, "Adversarial PNG", to_png_bytes(run.x_adv), f"{stem}.png", key=f"{key}_png")
    trace_csv = records_to_csv(run.trace.to_records())
    download(d2, "Trace CSV", trace_csv, f"{stem}-trace.csv", key=f"{key}_csv")
    run_downloads(
        run, "attack", settings, name=name, sha=sha, image=image, model=model, stem=stem,
        key=key, where=(d3, d4),
    )  # fmt: skip
    st.caption(
        "The PNG stores 8-bit pixels: rounding moves each pixel by up to 1/510, which can "
        "change a k-WTA network's prediction; the JSON holds the exact float image, how it "
        "was made, and what `kwta reproduce` compares; the Python script makes the same call."
    )


def masking_downloads(
    rep: MaskingReport, *, name: str, sha: str, model: nn.Module, seed: int, n: int, key: str
) -> None:
    """A masking check's JSON (page action ``"masking"`` on ``n`` class-balanced test images
    chosen with ``seed``) and its Python script."""
    result_downloads(
        st.columns(2),
        rep.to_dict() | {"model": name},
        provenance("masking", {"eps": rep.eps, "seed": seed}, model=(name, sha), batch=(n, seed)),
        rep,
        model,
        f"masking-{name}-n{n}-eps{rep.eps:g}-s{seed}",
        label="Masking check JSON",
        key=key,
    )


def masking_report(rep: Mapping[str, Any]) -> None:
    """A gradient-masking check (:meth:`kwta.analysis.masking.MaskingReport.to_dict`): the
    verdict, one tile per indicator with its threshold, and what it was measured on."""
    if rep["suspected"]:
        st.error("**Gradient masking suspected**", icon=":material/warning:")
    else:
        st.success("**No sign of gradient masking**", icon=":material/check_circle:")
    tiles = st.columns(2)
    for i, ind in enumerate(rep["indicators"]):
        tiles[i % 2].metric(
            ind["title"],
            f"{ind['value']:.0%}",
            "flagged" if ind["flagged"] else f"threshold {ind['threshold']:.0%}",
            delta_color="inverse" if ind["flagged"] else "off",
            delta_arrow="off",
            help=ind["detail"],
        )
    st.caption(
        f"{rep['n_correct']} of {rep['n']} images correct; robust to white-box PGD: "
        f"{rep['whitebox_robust']}, to {rep['blackbox']}: {rep['blackbox_robust']}."
    )
