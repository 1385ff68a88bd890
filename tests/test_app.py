"""The Streamlit app, page by page, with ``streamlit.testing.v1.AppTest``.

Every page runs without an exception; each page's main button produces charts
whose data is checked against the library (and, for the attack, against the
model's own output on the returned adversarial image). Bad inputs (uploads,
missing weights, extreme parameters) give messages, not crashes; URL
parameters reproduce a view; concurrent sessions get their own results.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from app_fixtures import APP_MAIN, KWTA_NAME, RELU_NAME, make_broken_zoo
from PIL import Image
from torch import nn

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

import kwta
from kwta.data import CIFAR10_CLASSES, cifar10_sample
from kwta.explorer import jobs
from kwta.explorer.adaptive import adaptive_attack_with_trace, budget_schedule, margin_curve
from kwta.explorer.demo import activation_demo
from kwta.explorer.images import MAX_UPLOAD_BYTES, MAX_UPLOAD_MB, to_png_bytes
from kwta.explorer.limits import max_queries
from kwta.explorer.runs import attack_with_trace, to_uint8
from kwta.utils import default_device
from kwta.zoo.summary import summarize_card

TIMEOUT = 180  # seconds per script run; generous for a busy 2-core CI machine


# --------------------------------------------------------------------------- fixtures, helpers


@pytest.fixture
def app_env(zoo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the app at the test zoo and the bundled images."""
    monkeypatch.setenv("KWTA_PRETRAINED", str(zoo))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    return zoo


def start() -> AppTest:
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT)
    at.run()
    ok(at)
    return at


def ok(at: AppTest) -> None:
    """No uncaught exception in the last run."""
    assert not at.exception, "\n".join(
        e.value + "\n" + "\n".join(e.stack_trace) for e in at.exception
    )


def open_page(at: AppTest, page: str, **params: Any) -> AppTest:
    """Switch to ``views/<page>.py`` as if a link with ``params`` was opened."""
    at.query_params = {k: str(v) for k, v in params.items()}
    at.switch_page(f"views/{page}.py").run()
    ok(at)
    return at


def charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """Plotly charts of the last run by widget key → figure JSON."""
    out = {}
    for el in at.get("plotly_chart"):
        key = el.proto.id.split("-", 2)[2] if el.proto.id.count("-") >= 2 else el.proto.id
        out[key] = json.loads(el.proto.spec)
    return out


def texts(elements: Any) -> str:
    return "\n".join(str(e.value) for e in elements)


def load(zoo: Path, name: str) -> nn.Module:
    return kwta.load_pretrained(name, directory=zoo)


# --------------------------------------------------------------------------- every page


PAGES = [
    "overview", "lesson", "attack", "landscape", "attack_path", "toy_fit", "patterns", "adaptive",
    "zoo",
]  # fmt: skip


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(app_env: Path, page: str) -> None:
    at = start()
    # the sidebar shows the device (AppTest drops main.py's own elements after a page switch,
    # so this is checked on the first run; the browser test checks every page)
    assert "Device:" in texts(at.sidebar.info) + texts(at.sidebar.success)
    open_page(at, page)
    assert at.title, "each page has a title"


def test_pages_without_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty models folder: model pages explain how to train; Overview and Toy fit work."""
    monkeypatch.setenv("KWTA_PRETRAINED", str(tmp_path))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    at = start()
    assert "ov_chart" in charts(at)
    for page in ("attack", "landscape", "attack_path", "patterns", "adaptive", "zoo"):
        open_page(at, page)
        warning = texts(at.warning)
        assert "No pretrained models" in warning and "python -m kwta train" in warning, page
    open_page(at, "toy_fit", toy_steps=200, toy_width=16)
    at.button(key="toy_run").click().run()
    ok(at)
    assert "toy_chart" in charts(at)


# --------------------------------------------------------------------------- Overview (Fig. 2)


def test_overview_fig2(app_env: Path) -> None:
    at = start()
    fig = charts(at)["ov_chart"]
    bars = fig["data"]
    assert len(bars) == 5  # input, ReLU, max-pool, LWTA, k-WTA
    x = np.array(bars[0]["y"])
    assert len(x) == 12
    k = activation_demo(x.tolist(), ratio=0.25).k
    assert np.count_nonzero(bars[4]["y"]) == k == 3
    assert np.array_equal(bars[1]["y"], np.maximum(x, 0))
    at.slider(key="ov_gamma").set_value(0.5).run()
    ok(at)
    assert np.count_nonzero(charts(at)["ov_chart"]["data"][4]["y"]) == 6
    assert at.query_params["ov_gamma"] == "0.5"
    # a user-typed vector, then an unreadable one: an error, and the page keeps working
    at.toggle(key="ov_custom").set_value(True).run()
    at.text_area(key="ov_vec").set_value("3, -1, 2, 5").run()
    ok(at)
    assert charts(at)["ov_chart"]["data"][4]["y"] == [3.0, 0.0, 0.0, 5.0]  # γ = 0.5: k = 2
    at.text_area(key="ov_vec").set_value("3, banana").run()
    ok(at)
    assert "banana" in texts(at.error)
    assert "ov_chart" in charts(at)
    # the same activations, trained: the zoo's natural models with their cards' numbers
    table = next(t.value for t in at.dataframe if "model" in t.value.columns)
    assert list(table["model"]) == [RELU_NAME, KWTA_NAME]
    cards = kwta.list_pretrained(app_env)
    for name, clean in zip(table["model"], table["clean"], strict=True):
        assert clean == f"{100 * summarize_card(cards[name]).clean:.1f}%"
    assert "No naturally trained LWTA model" in texts(at.caption)


# --------------------------------------------------------------------------- Live attack (Fig. 3)


def test_attack_page_trace_and_prediction(app_env: Path) -> None:
    steps, eps = 8, 0.031
    at = open_page(start(), "attack", atk_steps=steps, atk_img="index", atk_idx=11)
    assert at.selectbox(key="atk_a").value == RELU_NAME
    assert at.selectbox(key="atk_b").value == KWTA_NAME
    at.button(key="atk_run").click().run()
    ok(at)
    figs = charts(at)
    results = at.session_state["atk_results"]
    assert set(results) == {RELU_NAME, KWTA_NAME}
    x_clean, y = cifar10_sample("test").tensors([11])
    for i, name in enumerate((RELU_NAME, KWTA_NAME)):
        trace = figs[f"atk_trace_{i}"]["data"]
        assert len(trace) == 10  # one line per class
        assert all(len(t["y"]) == steps + 1 and len(t["x"]) == steps + 1 for t in trace)
        true = [t for t in trace if t["name"].endswith("(true)")]
        assert len(true) == 1 and true[0]["name"] == f"{CIFAR10_CLASSES[int(y)]} (true)"
        assert {t["line"]["width"] for t in trace} == {4, 1.5}  # the true class stands out
        final_logits = np.array([t["y"][-1] for t in trace])
        res = results[name]
        x_adv = torch.from_numpy(res["x_adv"])
        assert (x_adv - x_clean).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        with torch.no_grad():
            logits = load(app_env, name)(x_adv)[0]
        assert (
            int(final_logits.argmax())
            == int(logits.argmax())
            == res["final_pred"]
            == res["adv_pred"]
        )
        assert np.allclose(final_logits, logits.numpy(), atol=1e-4)
        # linf grows by at most alpha per step from 0 (no random start by default)
        linf = np.array(trace[0]["x"])
        assert linf[0] == 0 and np.all(np.diff(linf) <= 0.001 + 1e-6) and linf[-1] <= eps + 1e-6
        assert f"atk_probs_{i}" in figs
    # clean, adversarial and perturbation images per model
    assert len(at.main.image) == 6
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels.count("Adversarial PNG") == 2 and labels.count("Trace CSV") == 2
    assert labels.count("Result JSON") == 2
    assert at.query_params["atk_steps"] == str(steps) and at.query_params["run"] == "1"
    # a rerun (e.g. after a download) keeps the result on screen, from the cache
    at.run()
    ok(at)
    assert "atk_trace_1" in charts(at)


def test_attack_link_reproduces_view_and_caps_steps(app_env: Path) -> None:
    at = open_page(
        start(),
        "attack",
        atk_b="(none)",
        atk_eps=0.02,
        atk_steps=3,
        atk_img="class",
        atk_cls="ship",
        atk_nth=2,
        atk_loss="margin",
        atk_x="step",
        run=1,
    )
    figs = charts(at)  # run=1: the shared link shows the result without a click
    assert "atk_trace_0" in figs and "atk_trace_1" not in figs
    trace = figs["atk_trace_0"]["data"]
    assert trace[0]["x"] == [0, 1, 2, 3]  # x-axis = step
    assert [t for t in trace if t["name"] == "ship (true)"]
    assert at.session_state["atk_results"][RELU_NAME]["eps"] == 0.02
    assert at.radio(key="atk_loss").value == "margin"
    # extreme parameters are capped with a message, and a bad link value is ignored
    at2 = open_page(start(), "attack", atk_steps=100_000, atk_eps="nan", atk_a="no-such-model")
    assert "capped at 200" in texts(at2.warning)
    assert at2.slider(key="atk_eps").value == pytest.approx(0.031)
    assert at2.selectbox(key="atk_a").value == RELU_NAME


#: Every URL key of every page (the image picker's with each page's prefix).
URL_KEYS = {
    "overview": ["ov_n", "ov_seed", "ov_gamma", "ov_group", "ov_custom", "ov_vec"],
    "attack": ["atk_a", "atk_b", "atk_eps", "atk_steps", "atk_alpha", "atk_loss", "atk_rs",
               "atk_seed", "atk_x"],
    "landscape": ["ls_models", "ls_grid", "ls_span", "ls_loss", "ls_seed", "ls_sharedz", "ls_wl"],
    "toy_fit": ["toy_n", "toy_width", "toy_depth", "toy_gamma", "toy_seed", "toy_steps"],
    "patterns": ["pat_t1gamma", "pat_model", "pat_layer", "pat_eps", "pat_gammas", "pat_relu",
                 "pat_dirs", "pat_seed", "pat_scope"],
    "adaptive": ["adv_m", "adv_eps", "adv_pgd_steps", "adv_est", "adv_steps", "adv_alpha",
                 "adv_sigma", "adv_budget", "adv_seed", "adv_n"],
    "attack_path": ["path_a", "path_b", "path_eps", "path_steps", "path_alpha", "path_rs",
                    "path_second", "path_grid", "path_seed", "path_step"],
    "zoo": ["zoo_filter", "zoo_gamma_model"],
    "lesson": ["les_step"],
}  # fmt: skip
PREFIX = {
    "attack": "atk", "landscape": "ls", "attack_path": "path", "patterns": "pat", "adaptive": "adv"
}  # fmt: skip


@pytest.mark.parametrize("value", ["-7", "1e9", "abc", "", "0.5,x,relu-nat,a,b,c,d"])
@pytest.mark.parametrize("page", PAGES)
def test_hostile_links_never_crash(app_env: Path, page: str, value: str) -> None:
    """Any value for any URL key: the page renders (values fall back or are clamped)."""
    keys = list(URL_KEYS[page])
    if page in PREFIX:
        keys += [f"{PREFIX[page]}_{k}" for k in ("img", "cls", "nth", "idx", "imgseed", "label")]
    at = open_page(start(), page, **dict.fromkeys(keys, value))
    assert at.title


@pytest.mark.parametrize("page", sorted(PREFIX))
def test_random_image_mode_on_every_model_page(app_env: Path, page: str) -> None:
    """The random-image picker's seed is its own widget, apart from the page's seeds."""
    p = PREFIX[page]
    at = open_page(start(), page, **{f"{p}_img": "random", f"{p}_imgseed": "5"})
    ok(at)
    assert at.session_state[f"{p}_img"] == "random"
    assert at.number_input(key=f"{p}_imgseed").value == 5
    if f"{p}_seed" in URL_KEYS[page]:
        assert at.number_input(key=f"{p}_seed").value == 0  # the attack/direction seed


def _png(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "kind", "message"),
    [
        ("notes.png", b"this is not an image at all", "error", "not an image"),
        ("cut.png", _png((32, 32))[:60], "error", "corrupt or truncated"),
        ("huge.png", b"\x89PNG" + b"\0" * MAX_UPLOAD_BYTES, "error", "the limit is"),
        ("big.png", _png((64, 48)), "info", "resized from 64×48 to 32×32"),
    ],
    ids=["not-an-image", "truncated", "oversized", "not-32x32"],
)
def test_uploads(app_env: Path, name: str, data: bytes, kind: str, message: str) -> None:
    at = open_page(start(), "attack", atk_img="upload", atk_steps=2, atk_b="(none)")
    at.sidebar.get("file_uploader")[0].set_value((name, data, "image/png")).run()
    ok(at)
    assert message in texts(getattr(at, kind))
    at.button(key="atk_run").click().run()  # the page keeps working (fallback or resized image)
    ok(at)
    assert "atk_trace_0" in charts(at)


def test_missing_weights_file(tmp_path: Path, zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = make_broken_zoo(tmp_path / "broken", zoo)
    monkeypatch.setenv("KWTA_PRETRAINED", str(broken))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    at = open_page(start(), "attack", atk_a=RELU_NAME, atk_b="kwta-broken", atk_steps=2)
    at.button(key="atk_run").click().run()
    ok(at)
    assert "Cannot load model `kwta-broken`" in texts(at.error)
    assert "atk_trace_0" in charts(at)  # the other model still runs
    open_page(at, "zoo")
    assert "is missing" in texts(at.error)


# --------------------------------------------------------------------------- Attack path


def test_attack_path_page_and_its_step_slider(app_env: Path) -> None:
    """Both models' walks on their planes, as the library computes them; the step slider moves
    the marker and changes the step's logits, prediction and pattern share; the link holds
    the step."""
    from kwta.explorer.paths import attack_path

    link = {"path_steps": 6, "path_grid": 5, "path_img": "index", "path_idx": 9}
    at = open_page(start(), "attack_path", **link)
    assert "Expected time: about" in texts(at.caption) and not charts(at)
    at.button(key="path_run").click().run()
    ok(at)
    figs = charts(at)
    x, y = cifar10_sample("test").tensors([9])
    for name in (RELU_NAME, KWTA_NAME):
        ref = attack_path(load(app_env, name), x, int(y), eps=0.031, alpha=0.003, steps=6, grid=5)
        heat = figs[f"path_heat_{name}"]["data"]
        assert np.allclose(heat[0]["z"], ref.plane.loss.T.numpy(), atol=1e-5)
        walk = next(t for t in heat if t.get("name") == "PGD's path (projected)")
        assert np.allclose(walk["x"], ref.plane.path[:, 0].numpy(), atol=1e-6)
        star = next(t for t in heat if t.get("name", "").startswith("step "))
        assert star["name"] == "step 6" and star["x"][0] == pytest.approx(walk["x"][6])
        logits = figs[f"path_logits_{name}"]["data"][0]["y"]
        assert np.allclose(logits, ref.run.trace.logits[6, 0].numpy(), atol=1e-5)
        assert f"path_surf_{name}" in figs
    before = dict(at.session_state["path_results"])
    at.slider(key="path_step").set_value(2).run()
    ok(at)
    after = at.session_state["path_results"]
    figs = charts(at)
    for name in (RELU_NAME, KWTA_NAME):
        ref = attack_path(load(app_env, name), x, int(y), eps=0.031, alpha=0.003, steps=6, grid=5)
        assert after[name]["step"] == 2 and before[name]["step"] == 6
        assert after[name]["changed"] == pytest.approx(float(ref.changed[2]))
        assert after[name]["pred"] == int(ref.run.trace.pred[2, 0])
        logits = figs[f"path_logits_{name}"]["data"][0]["y"]
        assert np.allclose(logits, ref.run.trace.logits[2, 0].numpy(), atol=1e-5)
        star = next(t for t in figs[f"path_heat_{name}"]["data"] if t.get("name") == "step 2")
        assert star["x"][0] == pytest.approx(float(ref.plane.path[2, 0]), abs=1e-6)
    assert at.query_params["path_step"] == "2" and at.query_params["run"] == "1"


# --------------------------------------------------------------------------- Loss landscape


def test_landscape_page(app_env: Path) -> None:
    grid = 7
    at = open_page(start(), "landscape", ls_grid=grid, ls_img="index", ls_idx=3)
    assert at.multiselect(key="ls_models").value == [RELU_NAME, KWTA_NAME]
    at.button(key="ls_run").click().run()
    ok(at)
    figs = charts(at)
    x, y = cifar10_sample("test").tensors([3])
    for name in (RELU_NAME, KWTA_NAME):
        surf = figs[f"ls_surf_{name}"]["data"][0]
        heat = figs[f"ls_heat_{name}"]["data"][0]
        assert surf["type"] == "surface" and heat["type"] == "heatmap"
        z = np.array(surf["z"])
        assert z.shape == (grid, grid) and np.array_equal(z, np.array(heat["z"]))
        ref = kwta.analysis.landscape.loss_landscape(
            load(app_env, name), x, int(y), grid=grid, span=0.04
        )
        assert np.allclose(z, ref.loss.numpy(), atol=1e-4)
        assert z[grid // 2, grid // 2] == pytest.approx(ref.clean_loss, abs=1e-4)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels.count("Grid CSV") == 2 and labels.count("Grid JSON") == 2
    at2 = open_page(start(), "landscape", ls_grid=5000)
    assert "capped at 101" in texts(at2.warning)


def test_landscape_out_of_memory(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GPU OOM: retried at a smaller batch; if even that fails, a clear message, no crash."""
    real = kwta.analysis.landscape.loss_landscape
    tried: list[int] = []

    def small_memory(*args: Any, batch_size: int, **kw: Any) -> Any:
        tried.append(batch_size)
        if batch_size > 32:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(*args, batch_size=batch_size, **kw)

    monkeypatch.setattr(kwta.analysis.landscape, "loss_landscape", small_memory)
    link = {"ls_grid": 5, "ls_img": "index", "ls_idx": 8, "ls_models": RELU_NAME, "run": 1}
    at = open_page(start(), "landscape", ls_seed=4243, **link)
    assert tried == [256, 128, 64, 32]
    x, y = cifar10_sample("test").tensors([8])
    ref = real(load(app_env, RELU_NAME), x, int(y), grid=5, seed=4243)
    assert np.allclose(charts(at)[f"ls_heat_{RELU_NAME}"]["data"][0]["z"], ref.loss, atol=1e-4)

    def no_memory(*args: Any, **kw: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    monkeypatch.setattr(kwta.analysis.landscape, "loss_landscape", no_memory)
    at = open_page(start(), "landscape", ls_seed=4244, **link)
    assert "ran out of memory even at batch size 8" in texts(at.error)
    assert not charts(at)
    monkeypatch.setattr(kwta.analysis.landscape, "loss_landscape", real)  # the page keeps working
    at.run()
    ok(at)
    assert not at.error and f"ls_heat_{RELU_NAME}" in charts(at)


# --------------------------------------------------------------------------- 1-D toy fit (Fig. 1)


def test_toy_fit_page(app_env: Path) -> None:
    at = open_page(start(), "toy_fit", toy_steps=300, toy_width=32, toy_n=6, toy_seed=1)
    at.button(key="toy_run").click().run()
    ok(at)
    fig = charts(at)["toy_chart"]
    by_name = {t["name"]: t for t in fig["data"]}
    assert len(by_name["training points"]["x"]) == 6
    ref = kwta.analysis.toy.toy_fit(n_points=6, width=32, ratio=0.1, seed=1, steps=300)
    jumps = next(t for n, t in by_name.items() if n.startswith("k-WTA jumps"))
    assert len([v for v in jumps["x"] if v is None]) == len(ref.kwta_jumps) > 0
    kwta_line = by_name["k-WTA-0.1 fit"]
    assert sum(v is None for v in kwta_line["y"]) == len(ref.kwta_jumps)  # broken at each jump
    assert None not in by_name["ReLU fit"]["y"]  # continuous
    assert at.session_state["toy_result"]["relu_jumps"] == 0
    assert at.metric[0].value == str(len(ref.kwta_jumps))


def test_a_job_past_the_servers_limit_stops_with_a_message(
    app_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$KWTA_MAX_JOB_SECONDS stops a heavy fit at its next step: the page says why and how to
    go on, and the job's slot is free again. Before the click the page said so: the expected
    time (Adam steps × a step timed on this machine) passes the limit."""
    monkeypatch.setenv(jobs.ENV_MAX_JOB_SECONDS, "0.5")
    at = open_page(start(), "toy_fit", toy_steps=10_000, toy_width=512, toy_depth=4, toy_n=64)
    warned = texts(at.warning)
    assert "Expected time: about" in warned and "20,000 Adam steps" in warned
    assert "more than the 0.5 s one job may run" in warned
    at.button(key="toy_run").click().run()
    ok(at)
    shown = texts(at.error)
    assert "stopped after 0.5 s" in shown and "KWTA_MAX_JOB_SECONDS" in shown
    assert not charts(at) and jobs.default_queue().running == 0


def test_the_expected_time_is_stated_before_the_click(app_env: Path) -> None:
    """Each heavy page states its job's expected time at its settings, from units timed on
    this machine, before anything runs: a caption while it fits the limit per job."""
    cases = {
        "attack": ({"atk_steps": 40}, "82 PGD steps"),  # two models × (40 + 1)
        "landscape": ({"ls_grid": 11}, "242 grid points"),  # two models × 11²
        "toy_fit": ({"toy_steps": 300}, "600 Adam steps"),
        "adaptive": ({"adv_budget": 2000}, "2,000 queries"),
    }
    for page, (params, units) in cases.items():
        at = open_page(start(), page, **params)
        shown = texts(at.caption)
        assert re.search(rf"Expected time: (at most )?about [\d.]+ (ms|s) \({units} × ", shown), (
            page,
            shown,
        )
        assert not charts(at), page  # nothing ran


def test_a_stopped_attack_keeps_the_steps_it_made(
    app_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attack stopped at the server's limit leaves its partial trace on the page."""
    monkeypatch.setenv(jobs.ENV_MAX_JOB_SECONDS, "0.2")
    at = open_page(start(), "attack", atk_steps=200, atk_b="(none)", atk_img="index", atk_idx=5)
    at.button(key="atk_run").click().run()
    ok(at)
    assert "The chart shows the steps it made" in texts(at.error)
    live = [f for k, f in charts(at).items() if k.startswith("atk_live_0_")]
    assert live and 1 < len(live[-1]["data"][0]["y"]) < 201  # some steps, not all
    assert jobs.default_queue().running == 0


# --------------------------------------------------------------------------- Activation patterns


def test_patterns_page_and_shared_model_untouched(app_env: Path) -> None:
    at = open_page(
        start(),
        "patterns",
        pat_gammas="0.05,0.5",
        pat_layer="layer1.0.act1",
        pat_img="index",
        pat_idx=21,
    )
    assert at.selectbox(key="pat_model").value == KWTA_NAME
    at.button(key="pat_run").click().run()
    ok(at)
    figs = charts(at)
    clean = np.array(figs["pat_map_clean"]["data"][0]["z"])
    assert clean.shape == (32, 32)  # layer1 of a CIFAR ResNet keeps 32×32
    res = at.session_state["pat_results"]
    model = load(app_env, KWTA_NAME)
    x, _ = cifar10_sample("test").tensors([21])
    masks = kwta.analysis.patterns.activation_patterns(model, x)
    assert res["winners"] == int(masks["layer1.0.act1"].sum())
    assert res["winners"] == kwta.nn.functional.k_from_ratio(0.2, res["units"])
    names = [t["name"] for t in figs["pat_change"]["data"]]
    assert names[0].startswith("k-WTA-0.2 (as trained)")
    assert any("γ = 0.05" in n for n in names) and any("γ = 0.5" in n for n in names)
    assert any(n.startswith("ReLU baseline") for n in names)
    # Theorem 2: the overlap of different images' patterns, per layer, model and ReLU baseline
    overlap = {t["name"]: t for t in figs["pat_overlap"]["data"]}
    kw_obs = next(t for n, t in overlap.items() if n.startswith("k-WTA") and "observed" in n)
    kw_chance = next(t for n, t in overlap.items() if n.startswith("k-WTA") and "random" in n)
    relu_obs = next(t for n, t in overlap.items() if n.startswith("ReLU") and "observed" in n)
    data = cifar10_sample("test")
    xs, _ = data.tensors(data.balanced_indices(32, seed=0))
    ref = kwta.analysis.patterns.overlap_summary(kwta.analysis.patterns.pattern_overlap(model, xs))
    assert list(kw_obs["x"]) == list(ref) and np.allclose(kw_obs["y"], list(ref.values()))
    assert np.allclose(kw_chance["y"], 0.2, atol=0.01)  # k/N = γ for every k-WTA layer
    assert np.mean(kw_obs["y"]) < np.mean(relu_obs["y"])  # k-WTA patterns overlap far less
    # the γ sweep ran on a copy: the model every session shares still has γ = 0.2
    models = sys.modules["ui.models"]  # the app's model cache, as the page loaded it

    shared = models._load_model(
        KWTA_NAME,
        kwta.list_pretrained(app_env)[KWTA_NAME]["sha256"],
        str(app_env),
        str(default_device()),
    )
    assert kwta.get_ratio(shared) == 0.2


# --------------------------------------------------------------------------- Model zoo


def test_zoo_page(app_env: Path) -> None:
    at = open_page(start(), "zoo")
    cards = kwta.list_pretrained(app_env)
    tables = [t.value for t in at.dataframe]
    assert len(tables) == 2
    flat = "\n".join(t.to_string() for t in tables)
    for name in (RELU_NAME, KWTA_NAME):
        s = summarize_card(cards[name])
        assert f"{100 * s.clean:.1f}%" in flat  # measured here
    assert "92.9%" in flat and "91.7%" in flat  # Table 1: natural ReLU, natural k-WTA-0.2
    assert "zoo_chart" in charts(at)
    at.radio(key="zoo_filter").set_value("kwta").run()
    ok(at)
    assert len(at.dataframe) == 1


def test_zoo_page_fig4(app_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fig. 4: the live curve is the library's γ sweep; a published sweep is drawn only for
    the weights it started from."""
    from kwta.analysis.weights import gamma_sweep
    from kwta.training.sweep import SWEEP_FILE, publish_sweep

    at = open_page(start(), "zoo")
    assert "No trained sweep" in texts(at.info) and "zoo_gamma_chart" not in charts(at)
    picker = at.selectbox(key="zoo_gamma_model")
    assert picker.value == KWTA_NAME and len(picker.options) == 1  # k-WTA models only
    at.button(key="zoo_gamma_run").click().run()
    ok(at)
    live = charts(at)["zoo_gamma_chart"]["data"]
    assert len(live) == 1 and "without retraining" in live[0]["name"]  # clean only
    assert live[0]["x"] == [0.2, 0.175, 0.15, 0.125, 0.1, 0.075, 0.05, 0.025]
    data = cifar10_sample("test")
    x, y = data.tensors(data.balanced_indices(200, seed=0))
    ref = gamma_sweep(load(app_env, KWTA_NAME), x, y, live[0]["x"])
    assert np.allclose(live[0]["y"], ref.clean_accuracy.numpy(), atol=1e-6)
    assert live[0]["y"][0] > 0.15  # the model's own γ: trained (chance is 0.1)
    assert at.query_params["zoo_gamma_model"] == KWTA_NAME

    # a published sweep (here a made-up one in a copy of the zoo) is drawn beside it
    zoo = tmp_path / "zoo"
    shutil.copytree(app_env, zoo)
    monkeypatch.setenv("KWTA_PRETRAINED", str(zoo))
    card = kwta.list_pretrained(zoo)[KWTA_NAME]
    points = [
        {"ratio": r, "clean_accuracy": c, "clean_n": 1000, "robust_accuracy": a,
         "robust_n": 500, "sha256": "", "train_seconds": 60.0, "eval_seconds": 1.0}
        for r, c, a in ((0.2, 0.8, 0.05), (0.1, 0.78, 0.09), (0.05, 0.6, 0.04))
    ]  # fmt: skip
    settings = {"passes": 2, "lr": 0.01, "pgd": {"eps": 0.031, "steps": 20}}
    result = {"start": KWTA_NAME, "settings": settings | {"start_sha256": card["sha256"]}}
    publish_sweep(result | {"points": points}, card, zoo)
    at = open_page(start(), "zoo")
    fig = charts(at)["zoo_gamma_chart"]["data"]
    assert [t["name"] for t in fig] == [f"fine-tuned from {KWTA_NAME}"] * 2
    assert fig[0]["y"] == [0.8, 0.78, 0.6] and fig[1]["y"] == [0.05, 0.09, 0.04]
    assert "2 fine-tuning pass(es)" in texts(at.caption) and "No trained sweep" not in texts(
        at.info
    )
    assert (zoo / SWEEP_FILE).is_file() and not (app_env / SWEEP_FILE).exists()
    # Fig. 6 needs a directly trained k-WTA-0.1 beside an incremental one: says how to get it
    assert "--only kwta0.1-direct" in texts(at.info)


# --------------------------------------------------------------------------- adaptive attacks


def test_adaptive_page_runs_both_attacks(app_env: Path) -> None:

    idx, budget, steps = 11, 600, 5
    at = open_page(
        start(),
        "adaptive",
        adv_img="index",
        adv_idx=idx,
        adv_pgd_steps=10,
        adv_steps=steps,
        adv_budget=budget,
    )
    assert at.selectbox(key="adv_m").value == KWTA_NAME  # the k-WTA model by default
    at.button(key="adv_run").click().run()
    ok(at)
    figs = charts(at)
    assert {"adv_logits_standard", "adv_logits_adaptive", "adv_margins"} <= set(figs)
    assert len(figs["adv_logits_standard"]["data"]) == 10
    margins = figs["adv_margins"]["data"]
    assert [t["name"] for t in margins] == ["standard PGD", "adaptive (fd)"]
    assert len(margins[0]["x"]) == 10 + 1
    # the page's adaptive run is the library's, with the schedule fitted to the budget
    samples = budget_schedule(budget, steps)
    x, y = cifar10_sample("test").tensors([idx])
    run = adaptive_attack_with_trace(
        load(app_env, KWTA_NAME), x, int(y), eps=0.031, alpha=0.005, steps=steps,
        sigma=8 / 255, samples=samples, seed=0,
    )  # fmt: skip
    res = at.session_state["adv_results"]["adaptive"]
    assert res["success"] == run.success and res["queries"] == run.queries
    assert 0 < res["queries"] <= budget
    assert np.allclose(margins[1]["y"], margin_curve(run.trace), atol=1e-4)
    # the zoo-wide table lists every model; the published results are quoted
    table = at.dataframe[0].value
    assert list(table["model"]) == list(kwta.list_pretrained(app_env))
    assert "0.16%" in at.dataframe[1].value.to_string()
    # the link reproduces the view
    assert at.query_params["adv_budget"] == str(budget) and at.query_params["run"] == "1"


def test_adaptive_page_masking_check_and_caps(app_env: Path) -> None:
    from kwta.analysis.masking import masking_indicators

    at = open_page(start(), "adaptive", adv_n=8, adv_budget=10**9)
    cap = max_queries(default_device().type == "cuda")
    assert f"capped at {cap}" in texts(at.warning)
    assert f"at most {cap:,} queries" in texts(at.caption)  # the budget used
    # a shared link with run=1 replays the attack run, never the costlier masking check
    linked = open_page(start(), "adaptive", adv_n=8, run=1)
    assert "adv_reports" not in linked.session_state and len(linked.metric) == 0
    at.button(key="adv_check").click().run()
    ok(at)
    reports = at.session_state["adv_reports"]
    assert set(reports) == {KWTA_NAME, RELU_NAME}  # the model and its ReLU twin
    data = cifar10_sample("test")
    x, y = data.tensors(data.balanced_indices(8, seed=0))
    direct = masking_indicators(
        load(app_env, KWTA_NAME), x, y, generator=torch.Generator().manual_seed(0)
    )
    assert reports[KWTA_NAME] == direct.to_dict()
    assert len(at.metric) == 10  # five indicators per model
    # a budget too small for the steps is a message, not a crash
    at2 = open_page(start(), "adaptive", adv_steps=50, adv_budget=10)
    assert "too small" in texts(at2.error)
    assert at2.button(key="adv_run").disabled and not at2.button(key="adv_check").disabled
    assert any("paper-reported vs standard PGD" in h.value for h in at2.header)  # page goes on


# --------------------------------------------------------------------------- concurrency


def test_concurrent_sessions_get_their_own_results(app_env: Path) -> None:
    """Several sessions at once, each with its own ε, image and models, sharing the caches."""
    settings = [
        {"atk_eps": 0.01, "atk_b": "(none)", "atk_idx": 5, "atk_steps": 4},
        {"atk_eps": 0.02, "atk_b": KWTA_NAME, "atk_idx": 40, "atk_steps": 6},
        {"atk_eps": 0.05, "atk_a": KWTA_NAME, "atk_b": "(none)", "atk_idx": 77, "atk_steps": 5},
    ]
    # AppTest shares Streamlit's process-wide Runtime between instances, so its sessions
    # cannot run in parallel threads (one run's teardown removes another's runtime). The
    # sessions here are alive at once and interleaved; truly parallel sessions against a
    # real server are tests/test_browser.py::test_two_sessions_at_once and tests/test_load.py.
    sessions = [open_page(start(), "attack", atk_img="index", **s) for s in settings]
    for at in sessions:
        at.button(key="atk_run").click().run()
        ok(at)
    out: dict[int, Any] = {
        i: (at.session_state["atk_results"], charts(at)) for i, at in enumerate(sessions)
    }
    queue = jobs.default_queue()  # every attack went through the process-wide job queue
    assert 1 <= queue.peak_running <= queue.max_jobs and queue.running == 0
    data = cifar10_sample("test")
    for i, s in enumerate(settings):
        results, figs = out[i]
        names = [s.get("atk_a", RELU_NAME)] + ([s["atk_b"]] if s["atk_b"] != "(none)" else [])
        assert list(results) == names
        x, y = data.tensors([s["atk_idx"]])
        for j, name in enumerate(names):
            r = results[name]
            assert r["eps"] == s["atk_eps"] and r["steps"] == s["atk_steps"]
            assert r["label"] == int(y)
            trace = figs[f"atk_trace_{j}"]["data"]
            assert all(len(t["y"]) == s["atk_steps"] + 1 for t in trace)
            ref = attack_with_trace(
                load(app_env, name),
                x,
                int(y),
                eps=s["atk_eps"],
                alpha=0.001,
                steps=s["atk_steps"],
            )
            assert torch.allclose(torch.from_numpy(r["x_adv"]), ref.x_adv, atol=1e-6)
            assert np.allclose([t["y"][-1] for t in trace], ref.trace.logits[-1, 0], atol=1e-4)


def test_png_bytes_helper_roundtrip() -> None:
    """The PNG the attack page offers decodes to the same 8-bit image."""
    x = cifar10_sample("test").tensors([0])[0]
    img = Image.open(io.BytesIO(to_png_bytes(x)))
    assert img.size == (32, 32)
    assert np.array_equal(np.asarray(img).transpose(2, 0, 1), to_uint8(x))


# --------------------------------------------------------------------------- user text is inert

EVIL = "[log in here](http://evil.example/login) ![pixel](http://evil.example/p.png) <b>x</b>"


def outside_code(markdown: str) -> str:
    """The Markdown with its inline code spans removed: what would be *rendered* as markup."""
    return re.sub(r"`[^`\n]*`", "", markdown)


def test_link_values_are_echoed_as_inert_short_code(app_env: Path) -> None:
    at = open_page(start(), "attack", atk_eps=EVIL + "x" * 10_000, atk_steps=2)
    shown = texts(at.warning)
    assert "Ignored the link's value" in shown and "evil.example" in shown
    assert "evil.example" not in outside_code(shown)  # only inside a code span: inert
    assert "<b>" not in outside_code(shown)
    assert max(len(span) for span in re.findall(r"`[^`\n]*`", shown)) <= 62  # truncated


def test_not_found_path_is_echoed_as_inert_code_once(app_env: Path) -> None:
    """app/server.py sends an unknown nested path here as ?not_found=PATH."""
    at = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT)
    at.query_params["not_found"] = "zoo/" + EVIL + "y" * 5000
    at.run()
    ok(at)
    shown = texts(at.warning)
    assert "Page not found" in shown and "evil.example" in shown
    assert "evil.example" not in outside_code(shown) and "<b>" not in outside_code(shown)
    assert "not_found" not in at.query_params  # shown once, not kept in the URL
    assert at.title and "explored" in at.title[0].value  # the start page runs below it
    at.run()
    assert "Page not found" not in texts(at.warning)


def test_upload_names_are_echoed_as_inert_code(app_env: Path) -> None:
    at = open_page(start(), "attack", atk_img="upload", atk_steps=2, atk_b="(none)")
    name = "**bold**" + EVIL + ".png"
    at.sidebar.get("file_uploader")[0].set_value((name, _png((64, 48)), "image/png")).run()
    ok(at)
    shown = texts(at.info) + texts(at.caption)
    assert "resized from 64×48" in shown and "evil.example" in shown
    assert "evil.example" not in outside_code(shown) and "**bold**" not in outside_code(shown)


def test_no_server_path_is_shown(app_env: Path) -> None:
    at = open_page(start(), "zoo")
    everything = texts(at.sidebar.caption) + texts(at.markdown) + texts(at.caption)
    assert str(app_env) not in everything and "/tmp" not in everything
    assert "$KWTA_PRETRAINED" in texts(at.sidebar.caption)


def test_one_upload_limit(app_env: Path) -> None:
    """Label, widget and server agree: the browser refuses a larger file before sending it."""
    import tomllib

    at = open_page(start(), "attack", atk_img="upload")
    up = at.sidebar.get("file_uploader")[0]
    mb = MAX_UPLOAD_MB
    assert mb * 10**6 == MAX_UPLOAD_BYTES  # Streamlit's browser counts an MB as 10**6 bytes
    server = tomllib.loads((Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text())
    assert up.proto.max_upload_size_mb == mb == server["server"]["maxUploadSize"]
    assert f"≤ {mb} MB" in up.proto.label


def test_replaced_and_clamped_link_values_are_reported(app_env: Path) -> None:
    """Unknown choices and out-of-range numbers from a link are replaced *with a message*
    quoting what was asked; a link whose models are all unknown keeps the default pair."""
    at = open_page(start(), "attack", atk_a="no-such-model", atk_eps=5, atk_steps=3)
    shown = texts(at.warning)
    assert "`no-such-model`" in shown and "not among the choices" in shown
    assert at.selectbox(key="atk_a").value == RELU_NAME
    assert "`5`" in shown and "outside the allowed range" in shown
    for huge, quoted in (("1e308", "`1.00e+308`"), ("9" * 400, "`9.99e+399`")):
        shown = texts(open_page(start(), "attack", atk_steps=huge).warning)
        assert quoted in shown and "outside the allowed range" in shown  # short, not 300 digits
        assert "0" * 20 not in shown and "9" * 20 not in shown
    at = open_page(start(), "landscape", ls_models="nope,also-nope")
    assert at.multiselect(key="ls_models").value  # the default selection, not an empty one
    assert "`nope,also-nope`" in texts(at.warning)


# --------------------------------------------------------------------------- Lesson


@pytest.fixture(scope="session")
def lesson_zoo(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test zoo plus its lesson.json, computed as ``kwta lesson`` does."""
    from kwta.explorer.lesson import compute_lesson, write_lesson
    from kwta.zoo.hub import list_pretrained

    out = tmp_path_factory.mktemp("lesson_zoo")
    for p in zoo.iterdir():
        shutil.copy(p, out / p.name)
    cards = list_pretrained(out)
    models = {"relu": load(out, RELU_NAME), "kwta": load(out, KWTA_NAME)}
    pair = {"relu": cards[RELU_NAME], "kwta": cards[KWTA_NAME]}
    write_lesson(compute_lesson(pair, models, cifar10_sample("test")), out)
    return out


def _link(at: AppTest, which: int = 0) -> tuple[str, dict[str, str]]:
    """The page and query of the step's "try it yourself" button (``which``: its place)."""
    button = at.get("link_button")[which]
    page, _, query = button.proto.url.partition("?")
    return page, dict(urllib.parse.parse_qsl(query))


def test_lesson_every_step_answers_from_the_results_file(
    lesson_zoo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of the six steps: its title, one chart, a question, a link to the full page —
    with the precomputed file nothing is computed (compute_lesson is never called)."""
    from kwta.explorer.lesson import STEPS

    monkeypatch.setenv("KWTA_PRETRAINED", str(lesson_zoo))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    monkeypatch.setattr(
        "kwta.explorer.lesson.compute_lesson", lambda *a, **k: pytest.fail("recomputed")
    )
    for i, step in enumerate(STEPS, 1):
        at = open_page(start(), "lesson", les_step=i)  # a fresh session: the link decides
        assert at.title[0].value == step.title
        assert charts(at), step.key
        assert "Question for the class" in texts(at.info) and step.question in texts(at.info)
        page, _ = _link(at)
        assert page == step.page
        assert at.query_params["les_step"] == str(i)
        if step.key == "landscape":  # and the same image's walk on the Attack path page
            walk, query = _link(at, 1)
            assert walk == "attack_path" and query["run"] == "1"
            assert (query["path_a"], query["path_b"]) == (RELU_NAME, KWTA_NAME)
            _, land = _link(at, 0)
            assert (query["path_cls"], query["path_nth"]) == (land["ls_cls"], land["ls_nth"])
            linked = open_page(start(), "attack_path", **query)
            assert f"path_heat_{KWTA_NAME}" in charts(linked)


def test_lesson_next_and_previous(lesson_zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KWTA_PRETRAINED", str(lesson_zoo))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    at = open_page(start(), "lesson", les_step=6)
    assert at.button(key="les_next").disabled
    at.button(key="les_prev").click().run()
    ok(at)
    assert at.session_state["les_step"] == 5 and at.query_params["les_step"] == "5"
    at = open_page(start(), "lesson", les_step=99)  # clamped, and said so
    assert at.session_state["les_step"] == 6 and "les_step" in texts(at.warning)


def test_lesson_pgd_link_reproduces_the_step(
    lesson_zoo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 3's link opens the live-attack page on the same models, image and settings: its
    trace is the lesson's, logit for logit."""
    monkeypatch.setenv("KWTA_PRETRAINED", str(lesson_zoo))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    lesson = json.loads((lesson_zoo / "lesson.json").read_text())
    at = open_page(start(), "lesson", les_step=3)
    page, params = _link(at)
    assert page == "attack" and params["run"] == "1"
    assert (params["atk_a"], params["atk_b"]) == (RELU_NAME, KWTA_NAME)
    fresh = open_page(start(), "attack", **params)
    assert fresh.session_state["atk_eps"] == pytest.approx(0.031)
    label = lesson["image"]["label"]
    assert fresh.session_state["atk_cls"] == CIFAR10_CLASSES[label]
    shown = [c for k, c in charts(fresh).items() if "trace" in k or "logit" in k]
    assert shown, list(charts(fresh))
    relu_logits = np.asarray(lesson["pgd"]["relu"]["logits"])
    first = shown[0]["data"]
    ys = np.array([trace["y"] for trace in first[: relu_logits.shape[1]]]).T
    np.testing.assert_allclose(ys, relu_logits, atol=1e-4)


def test_lesson_links_of_other_steps_open_their_pages(
    lesson_zoo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KWTA_PRETRAINED", str(lesson_zoo))
    monkeypatch.delenv("KWTA_DATA", raising=False)
    for step, key, value in ((2, "toy_gamma", 0.1), (4, "ls_grid", 21), (6, "adv_m", KWTA_NAME)):
        page, params = _link(open_page(start(), "lesson", les_step=step))
        fresh = AppTest.from_file(str(APP_MAIN), default_timeout=TIMEOUT)
        fresh.run()
        params = {k: v for k, v in params.items() if k != "run"}  # settings, not the run
        open_page(fresh, page, **params)
        assert fresh.session_state[key] == value, (step, key)
        assert not texts(fresh.info).count("Ignored the link"), step


def test_lesson_without_results_file_computes_once(
    app_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No lesson.json for these weights: the page computes the results once (with progress)
    and shows them; a second session gets them from the cache."""
    import kwta.explorer.lesson as lesson_mod

    monkeypatch.setitem(lesson_mod.TOY, "steps", 100)  # a short toy fit keeps the test quick
    calls: list[int] = []
    real = lesson_mod.compute_lesson

    def counted(*a: Any, **k: Any) -> dict[str, Any]:
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(lesson_mod, "compute_lesson", counted)
    at = open_page(start(), "lesson", les_step=4)
    assert "not precomputed" in texts(at.info) and len(charts(at)) == 2
    open_page(start(), "lesson", les_step=5)
    assert len(calls) == 1


def test_selections_survive_a_page_switch(app_env: Path) -> None:
    """Settings chosen on a page are still there after visiting another page and coming
    back (Streamlit drops the state of widgets a run does not draw)."""
    at = open_page(start(), "attack")
    at.slider(key="atk_eps").set_value(0.05).run()
    at.number_input(key="atk_steps").set_value(7).run()
    at.selectbox(key="atk_cls").set_value("ship").run()
    ok(at)
    open_page(at, "toy_fit")
    open_page(at, "attack")
    assert at.session_state["atk_eps"] == pytest.approx(0.05)
    assert at.session_state["atk_steps"] == 7 and at.session_state["atk_cls"] == "ship"
    assert at.query_params["atk_eps"] == "0.05"  # and the URL says so again


def test_heavy_links_wait_for_a_click(app_env: Path) -> None:
    """run=1 starts a link's work by itself only within the page's defaults; a heavier link
    shows its settings and waits for the button (a shared server is not a link's to load)."""
    at = open_page(start(), "attack", atk_b="(none)", atk_steps=100, run=1)
    assert "atk_trace_0" not in charts(at)
    assert "more work than the page's defaults" in texts(at.info)
    at.button(key="atk_run").click().run()
    ok(at)
    assert "atk_trace_0" in charts(at)
    light = open_page(start(), "attack", atk_b="(none)", atk_steps=40, run=1)
    assert "atk_trace_0" in charts(light)
    heavy = open_page(start(), "landscape", ls_grid=51, run=1)
    assert not charts(heavy) and "more work than the page's defaults" in texts(heavy.info)
    heavy_toy = open_page(start(), "toy_fit", toy_steps=50_000, run=1)
    assert "toy_chart" not in charts(heavy_toy)
