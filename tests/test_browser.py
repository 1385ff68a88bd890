"""End to end in a real browser: Playwright drives Debian's Chromium against ``streamlit run``.

A module fixture starts ``streamlit run app/server.py`` on a free local port with the
test model zoo (``$KWTA_BROWSER_PRETRAINED`` overrides it, e.g. to take README
screenshots of the real ``pretrained/`` models). Every page is opened, the
attack, the landscape and the other main buttons are run, the plotly charts are
checked to have rendered, and a screenshot of each page is saved under
``artifacts/screenshots/``; with ``$KWTA_UPDATE_SCREENSHOTS`` set, a copy shrunk below
300 KB also replaces the README's ``docs/screenshots/<page>.png``.

Without Playwright or Chromium the tests skip locally and fail in CI (``$CI`` set).
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_fixtures import REPO, agreeing_index, make_zoo, padded_png
from browser_helpers import RUN_TIMEOUT_MS, VIEWPORT, streamlit_server, wait_idle
from torch import nn

from kwta.explorer.images import MAX_UPLOAD_BYTES, MAX_UPLOAD_MB
from kwta.zoo.hub import list_pretrained, load_pretrained
from kwta.zoo.summary import default_pair

SHOTS = REPO / "artifacts" / "screenshots"
DOCS = REPO / "docs" / "screenshots"
DOC_LIMIT = 300_000  # bytes per README screenshot


@pytest.fixture(scope="module")
def zoo(
    browser: Any,
    tmp_path_factory: pytest.TempPathFactory,
    relu_model: nn.Module,
    kwta_model: nn.Module,
) -> Path:
    """The models the server lists: the test zoo, or ``$KWTA_BROWSER_PRETRAINED``."""
    override = os.environ.get("KWTA_BROWSER_PRETRAINED")
    if override:
        return Path(override).resolve()
    return make_zoo(tmp_path_factory.mktemp("zoo"), relu_model, kwta_model)


@pytest.fixture(scope="module")
def pair(zoo: Path) -> tuple[str, str]:
    """The app's default ReLU / k-WTA pair in that zoo."""
    relu, kw = default_pair(list_pretrained(zoo))
    assert relu and kw, f"{zoo} needs a ReLU and a k-WTA model"
    return relu, kw


@pytest.fixture(scope="module")
def demo_index(zoo: Path, pair: tuple[str, str]) -> int:
    """A test image both default models get right, so the attack has something to break."""
    return agreeing_index(*(load_pretrained(n, directory=zoo) for n in pair))


@pytest.fixture(scope="module")
def server(browser: Any, zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run app/server.py`` on a free port; yields its URL.

    With ``$KWTA_BROWSER_URL`` (a loopback URL, e.g. the Docker container that
    ``scripts/check_image.py`` started, with ``$KWTA_BROWSER_PRETRAINED`` naming the models it
    serves), the suite drives that server instead; its log is the caller's to check.
    """
    external = os.environ.get("KWTA_BROWSER_URL")
    if external:
        host = urllib.parse.urlsplit(external).hostname
        assert host in ("127.0.0.1", "localhost", "::1"), "only loopback servers are driven"
        yield external.rstrip("/")
        return
    log_path = tmp_path_factory.mktemp("server") / "streamlit.log"
    with streamlit_server(zoo, log_path) as (url, _proc):
        yield url
    text = log_path.read_text()
    assert "Traceback" not in text, text


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def _leaves_the_box(url: str) -> bool:
    """Whether a request goes to a host other than this machine (data:/blob: go nowhere)."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser tab; every test using it also checks that the page asked no host but
    the app's own for anything (a classroom box may be offline, and students' browsers
    should report to nobody)."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    p = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    p.on("pageerror", lambda err: errors.append(str(err)))
    p.on("request", lambda req: outside.append(req.url) if _leaves_the_box(req.url) else None)
    p.errors = errors
    yield p
    context.close()
    assert not outside, f"requests that left the box: {outside[:5]}"


# --------------------------------------------------------------------------- helpers


def open_page(p: Any, url: str) -> None:
    p.goto(url, wait_until="domcontentloaded")
    wait_idle(p)
    # the device line comes with the entry script's run: on a busy machine the page can
    # look idle a moment before it is drawn
    p.locator('[data-testid="stSidebar"]').get_by_text("Device:").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(p)
    assert not p.locator('[data-testid="stException"]').count(), p.locator(
        '[data-testid="stException"]'
    ).first.inner_text()


def plots(p: Any, at_least: int, timeout: int = RUN_TIMEOUT_MS) -> int:
    """Wait until ``at_least`` plotly charts have drawn (their ``.main-svg`` exists)."""
    p.wait_for_function(
        "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n"
        " && document.querySelectorAll('.js-plotly-plot').length >= n",
        arg=at_least,
        timeout=timeout,
    )
    return int(p.locator(".js-plotly-plot").count())


def click(p: Any, label: str) -> None:
    p.get_by_role("button", name=label).click()
    p.wait_for_timeout(300)


def shoot(p: Any, name: str) -> Path:
    """Full-height screenshot in artifacts/; a < 300 KB copy in docs/ when asked for."""
    from PIL import Image

    height = p.evaluate(
        "() => Math.max(document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0,"
        " document.body.scrollHeight)"
    )
    p.set_viewport_size({"width": VIEWPORT["width"], "height": int(min(max(height, 900), 4000))})
    p.wait_for_timeout(800)  # plotly re-lays out on resize
    SHOTS.mkdir(parents=True, exist_ok=True)
    raw = SHOTS / f"{name}.png"
    p.screenshot(path=str(raw), full_page=True)
    p.set_viewport_size(VIEWPORT)
    assert raw.stat().st_size > 10_000
    if not os.environ.get("KWTA_UPDATE_SCREENSHOTS"):
        return raw
    DOCS.mkdir(parents=True, exist_ok=True)
    img = Image.open(raw).convert("RGB")
    scale = 1.0
    while True:
        small = (
            img if scale == 1.0 else img.resize((int(img.width * scale), int(img.height * scale)))
        )
        buf = io.BytesIO()
        small.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(buf, "PNG", optimize=True)
        if buf.tell() < DOC_LIMIT or scale < 0.3:
            break
        scale *= 0.8
    (DOCS / f"{name}.png").write_bytes(buf.getvalue())
    assert (DOCS / f"{name}.png").stat().st_size < DOC_LIMIT
    return raw


# --------------------------------------------------------------------------- pages


def test_overview(server: str, page: Any) -> None:
    open_page(page, server)
    assert "k-Winners-Take-All" in page.locator("h1").first.inner_text()
    assert plots(page, 1) >= 1
    assert page.locator(".js-plotly-plot .main-svg").first.is_visible()
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    for title in (
        "Overview",
        "Lesson",
        "Live attack",
        "Loss landscape",
        "1-D toy fit",
        "Model zoo",
    ):
        assert title in nav
    page.wait_for_function(  # the URL remembers the selections (written as the run ends)
        "() => location.search.includes('ov_gamma=')", timeout=RUN_TIMEOUT_MS
    )
    shoot(page, "overview")
    assert not page.errors, page.errors


@pytest.mark.browser
def test_lesson_end_to_end(server: str, page: Any, browser: Any, pair: tuple[str, str]) -> None:
    """The six steps in order with the Next button: each shows its chart and question;
    step 3's link opens the live-attack page in a new tab on the same models, and it runs."""
    from kwta.explorer.lesson import STEPS

    open_page(page, f"{server}/lesson?les_step=1")
    for i, step in enumerate(STEPS, 1):
        if i > 1:
            click(page, "Next")
        page.wait_for_function(
            "t => document.querySelector('h1') && document.querySelector('h1').innerText === t",
            arg=step.title,
            timeout=RUN_TIMEOUT_MS,
        )
        page.wait_for_function(  # the step's result is there once its question is
            "q => document.querySelector('[data-testid=\"stMain\"]').innerText.includes(q)",
            arg=step.question,
            timeout=RUN_TIMEOUT_MS,
        )
        plots(page, 1)
        wait_idle(page)
        body = page.locator('[data-testid="stMain"]').inner_text()
        assert "Question for the class" in body, step.key
        page.wait_for_function(  # the step is in the URL once the run has finished
            "s => location.search.includes(s)", arg=f"les_step={i}", timeout=RUN_TIMEOUT_MS
        )
        if step.key == "pgd":
            plots(page, 2)
            # the ReLU and the k-WTA logit traces; the previous step's chart may linger a
            # moment after the run on a busy machine, so wait for it to go
            page.wait_for_function(
                "() => document.querySelectorAll('.js-plotly-plot').length === 2",
                timeout=30_000,
            )
            shoot(page, "lesson")
            link = page.get_by_role("link", name="Try it yourself: open the full page")
            href = link.get_attribute("href")
            assert href and href.startswith("attack?") and f"atk_a={pair[0]}" in href
            with page.context.expect_page() as new_tab:
                link.click()
            attack = new_tab.value
            attack.wait_for_load_state("domcontentloaded")
            wait_idle(attack)
            assert "run=1" in attack.url and f"atk_b={pair[1]}" in attack.url
            assert plots(attack, 4) >= 4  # both logit traces and both confidence charts
            attack.close()
    assert not page.errors, page.errors


@pytest.mark.browser
def test_live_attack(server: str, page: Any, demo_index: int, pair: tuple[str, str]) -> None:
    open_page(page, f"{server}/attack?atk_img=index&atk_idx={demo_index}")
    click(page, "Run attack")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stDownloadButton\"]').length >= 6",
        timeout=RUN_TIMEOUT_MS,
    )
    wait_idle(page)
    assert plots(page, 4) >= 4  # two logit traces, two confidence charts
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert (
        body.count("Attack succeeded")
        + body.count("Attack failed")
        + body.count("Already misclassified")
        == 2
    )
    assert pair[0] in body and pair[1] in body
    # ten class lines in the first trace chart, drawn as SVG paths
    lines = page.locator(".js-plotly-plot").first.locator(".scatterlayer .trace")
    assert lines.count() == 10
    # the JSON download is the result on screen
    with page.expect_download() as dl:
        page.get_by_role("button", name="Result JSON").first.click()
    data = json.loads(Path(dl.value.path()).read_text())
    assert data["steps"] == 40 and len(data["trace"]) == 41 and data["model"] == pair[0]
    assert data["label"] == data["clean_pred"]  # the demo image is classified correctly
    assert "run=1" in page.url and f"atk_idx={demo_index}" in page.url
    shoot(page, "attack")
    assert not page.errors, page.errors


@pytest.mark.browser
def test_loss_landscape(server: str, page: Any, demo_index: int) -> None:
    open_page(page, f"{server}/landscape?ls_img=index&ls_idx={demo_index}")
    click(page, "Compute landscapes")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stDownloadButton\"]').length >= 4",
        timeout=RUN_TIMEOUT_MS,
    )
    wait_idle(page)
    assert plots(page, 4) >= 4  # a surface and a heat map per model
    assert page.locator(".js-plotly-plot .gl-container, .js-plotly-plot canvas").count() >= 2
    assert "WebGL is not supported" not in page.locator('[data-testid="stMain"]').inner_text()
    shoot(page, "landscape")
    assert not page.errors, page.errors


TITLES_JS = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
    ".map(g => (g.layout && g.layout.title && (g.layout.title.text || g.layout.title)) || '')"
)


@pytest.mark.browser
def test_attack_path(server: str, page: Any, demo_index: int) -> None:
    """Both walks on their planes; the step slider, moved from the keyboard, moves both
    models' step panels (the logits' titles name the step) and the link keeps it."""
    open_page(page, f"{server}/attack_path?path_img=index&path_idx={demo_index}")
    click(page, "Trace the walks")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stDownloadButton\"]').length >= 4",
        timeout=RUN_TIMEOUT_MS,
    )
    wait_idle(page)
    assert plots(page, 6) >= 6  # per model: heat map, surface, logits
    titles = page.evaluate(TITLES_JS)
    assert sum("logits at step 40:" in str(t) for t in titles) == 2, titles
    shoot(page, "attack_path")
    # one key press, one rerun: a second press during the rerun may meet a redrawn slider
    page.locator('[data-testid="stMain"]').get_by_role("slider").first.press("ArrowLeft")
    page.wait_for_function(
        TITLES_JS + ".filter(t => String(t).includes('logits at step 39:')).length == 2",
        timeout=RUN_TIMEOUT_MS,
    )
    wait_idle(page)
    assert "path_step=39" in page.url and "run=1" in page.url
    assert not page.errors, page.errors


@pytest.mark.browser
def test_toy_fit(server: str, page: Any) -> None:
    open_page(page, f"{server}/toy_fit?toy_steps=1000")
    click(page, "Fit both networks")
    plots(page, 1)
    wait_idle(page)
    assert "k-WTA jumps" in page.locator('[data-testid="stMain"]').inner_text()
    shoot(page, "toy_fit")
    assert not page.errors, page.errors


@pytest.mark.browser
def test_activation_patterns(server: str, page: Any, demo_index: int) -> None:
    open_page(page, f"{server}/patterns?pat_img=index&pat_idx={demo_index}")
    click(page, "Compute patterns")
    assert plots(page, 4) >= 4  # three winner maps and the pattern-change curves
    wait_idle(page)
    shoot(page, "patterns")
    assert not page.errors, page.errors


@pytest.mark.browser
def test_is_kwta_really_robust(
    server: str, page: Any, demo_index: int, pair: tuple[str, str]
) -> None:
    open_page(
        page,
        f"{server}/adaptive?adv_img=index&adv_idx={demo_index}&adv_budget=3000&adv_n=16",
    )
    # the zoo table is drawn last: wait for it rather than for an idle page
    page.get_by_text("paper-reported vs standard PGD vs adaptive").wait_for(timeout=30_000)
    frames = page.locator('[data-testid="stDataFrame"]')
    frames.nth(1).wait_for(timeout=30_000)  # the zoo table and the published results
    click(page, "Run both attacks")
    assert plots(page, 3) >= 3  # two logit traces and the margin curves
    wait_idle(page)
    body = page.locator('[data-testid="stMain"]').inner_text()
    verdicts = ("Attack succeeded", "Attack failed", "Already misclassified")
    assert sum(body.count(v) for v in verdicts) >= 2
    assert "queries" in body and pair[1] in body
    click(page, "Check for masking")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 8",
        timeout=RUN_TIMEOUT_MS,
    )
    wait_idle(page)
    body = page.locator('[data-testid="stMain"]').inner_text()
    verdicts = body.count("Gradient masking suspected") + body.count("No sign of gradient masking")
    assert verdicts == 2  # the k-WTA model and its ReLU twin
    assert "run=1" in page.url and "adv_budget=3000" in page.url
    shoot(page, "adaptive")
    assert not page.errors, page.errors


@pytest.mark.browser
def test_model_zoo(server: str, page: Any, zoo: Path, pair: tuple[str, str]) -> None:
    open_page(page, f"{server}/zoo")
    plots(page, 1)
    body = page.locator('[data-testid="stMain"]').inner_text()
    assert pair[0] in body and pair[1] in body and "Table 1" in body
    from kwta.evaluation.transfer import read_transfer
    from kwta.zoo.summary import fig6_rows, table3_models

    all_cards = list_pretrained(zoo)
    roles = {r: all_cards[n] for r, n in table3_models(all_cards).items() if n is not None}
    # a data frame per card (ours vs paper), Table 3's two when its results are there,
    # Fig. 6's one when the zoo has its pair
    expected = len(all_cards) + (2 if read_transfer(zoo, roles) is not None else 0)
    expected += 1 if fig6_rows(all_cards) else 0
    frames = page.locator('[data-testid="stDataFrame"]')
    frames.nth(expected - 1).wait_for(timeout=30_000)  # data frames render after the charts
    assert frames.count() == expected
    shoot(page, "zoo")
    assert not page.errors, page.errors


@pytest.mark.browser
def test_two_sessions_at_once(server: str, browser: Any) -> None:
    """Two browser sessions open shared links with different settings at the same time."""
    settings = [(0.01, 7, "airplane"), (0.05, 9, "truck")]
    contexts = [browser.new_context(viewport=VIEWPORT, accept_downloads=True) for _ in settings]
    try:
        pages = [c.new_page() for c in contexts]
        for p, (eps, steps, cls) in zip(pages, settings, strict=True):
            p.goto(
                f"{server}/attack?atk_b=(none)&atk_eps={eps}&atk_steps={steps}"
                f"&atk_img=class&atk_cls={cls}&run=1",
                wait_until="commit",
            )
        for p, (eps, steps, _cls) in zip(pages, settings, strict=True):
            p.wait_for_function(
                "() => document.querySelectorAll('[data-testid=\"stDownloadButton\"]').length >= 3",
                timeout=RUN_TIMEOUT_MS,
            )
            wait_idle(p)
            with p.expect_download() as dl:
                p.get_by_role("button", name="Result JSON").first.click()
            data = json.loads(Path(dl.value.path()).read_text())
            assert data["eps"] == eps and data["steps"] == steps
            assert data["linf"] <= eps + 1e-6 and len(data["trace"]) == steps + 1
            assert f"ε = {eps:g}" in p.locator('[data-testid="stMain"]').inner_text()
    finally:
        for c in contexts:
            c.close()


def jobs_state(server: str) -> dict[str, int]:
    """The server's job queue (``GET /api/jobs``, answered by ``kwta.explorer.routes``)."""
    with urllib.request.urlopen(f"{server}/api/jobs", timeout=5) as r:
        state: dict[str, int] = json.loads(r.read())
    return state


def wait_for_jobs(server: str, done: Any, timeout_s: float, what: str) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while not done(state := jobs_state(server)):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout_s:.0f} s; the queue: {state}")
        time.sleep(0.25)
    return state


@pytest.mark.browser
def test_closed_tabs_leave_no_work_behind(server: str, browser: Any) -> None:
    """Toy-fit links opened in six tabs (one runs, the rest queue), the tabs closed mid-run:
    the running fit stops at its next step and the waiting ones leave the queue, so the
    server is idle at once and a fresh light job runs straight away. (Before cancellation
    the five queued fits, ~4 s of CPU each, kept the server busy for 20 s or more.)"""
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(6)]
    try:
        for i, c in enumerate(contexts):
            c.new_page().goto(f"{server}/toy_fit?toy_seed={9001 + i}&run=1", wait_until="commit")
        wait_for_jobs(
            server,
            lambda s: s["running"] >= 1 and s["running"] + s["waiting"] >= 4,
            RUN_TIMEOUT_MS / 1000,
            "the six tabs did not start their fits",
        )
    finally:
        for c in contexts:
            c.close()
    closed = time.monotonic()
    wait_for_jobs(
        server,
        lambda s: s["running"] == 0 and s["waiting"] == 0,
        10,
        "the closed tabs' jobs were not cancelled",
    )
    idle_after = time.monotonic() - closed
    context = browser.new_context(viewport=VIEWPORT)
    try:
        p = context.new_page()
        open_page(p, f"{server}/toy_fit?toy_seed=9100&toy_steps=200&run=1")
        plots(p, 1, timeout=60_000)
        assert "k-WTA jumps" in p.locator('[data-testid="stMain"]').inner_text()
    finally:
        context.close()
    assert idle_after < 10


@pytest.mark.browser
def test_unknown_paths_say_not_found(server: str, page: Any) -> None:
    """A nested unknown path (Streamlit alone shows a blank page there) and one-segment ones
    (Streamlit alone shows the start page) get the app's notice."""
    open_page(page, f"{server}/zoo/extra/[x](https:%2F%2Fexample.com)")
    main = page.locator('[data-testid="stMain"]')
    main.get_by_text("Page not found").wait_for(timeout=30_000)
    text = main.inner_text()
    assert "/zoo/extra/" in text and "explored" in text  # the notice, then the start page
    assert main.locator("a[href*='example.com']").count() == 0  # the path is inert text
    assert "not_found" not in page.url  # the notice is not kept in the address
    for one in ("nope", "Zoo"):  # one segment that is no page: the same notice
        open_page(page, f"{server}/{one}")
        notice = main.get_by_text("Page not found")
        notice.wait_for(timeout=30_000)
        assert f"/{one}" in notice.inner_text() and "not_found" not in page.url
    assert not page.errors, page.errors


@pytest.mark.browser
def test_upload_limit_at_its_edge(server: str, page: Any) -> None:
    """One upload limit everywhere: a real PNG of exactly MAX_UPLOAD_BYTES goes through the
    browser and the app and is used; one byte more the browser itself refuses, in the same
    MB the label states."""
    open_page(page, f"{server}/attack?atk_img=upload")
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert f"≤ {MAX_UPLOAD_MB} MB" in sidebar.inner_text()
    field = sidebar.locator('input[type="file"]')
    edge = {"name": "edge.png", "mimeType": "image/png", "buffer": padded_png(MAX_UPLOAD_BYTES)}
    field.set_input_files(files=[edge])
    sidebar.get_by_text("upload edge.png").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    assert "Cannot use" not in page.locator('[data-testid="stMain"]').inner_text()
    over = edge | {"name": "over.png", "buffer": padded_png(MAX_UPLOAD_BYTES + 1)}
    field.set_input_files(files=[over])
    sidebar.get_by_text(re.compile(rf"{MAX_UPLOAD_MB}(\.0)? ?MB or smaller")).wait_for(
        timeout=30_000
    )
    wait_idle(page)
    assert not page.locator('[data-testid="stException"]').count()
    assert not page.errors, page.errors


EVIL = "[log in here](http://evil.example/login) ![pixel](http://evil.example/p.png) <b>bold</b>"


@pytest.mark.browser
def test_link_values_never_render_as_markup(server: str, page: Any) -> None:
    """Markdown, HTML and very long values in links reach every echoing message only as
    inert text: no link, image or element of theirs appears in the rendered page."""
    from urllib.parse import quote

    evil = quote(EVIL + "x" * 5000, safe="")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    links = {  # link → what its message says
        f"/attack?atk_eps={evil}&atk_steps=2": "evil.example",  # a number that does not parse
        f"/attack?atk_a={evil}&atk_steps=2": "evil.example",  # an unknown model
        f"/landscape?ls_models={evil}": "evil.example",  # unknown models in a list
        f"/?ov_custom=true&ov_vec={evil}": "is not a number",  # the Overview's typed vector
        f"/zoo/{evil}/x": "evil.example",  # an unknown nested path
    }
    for link, marker in links.items():
        open_page(page, server + link)
        main = page.locator('[data-testid="stMain"]')
        main.get_by_text(marker, exact=False).first.wait_for(timeout=60_000)
        assert main.locator("a[href*='evil.example']").count() == 0, link
        assert page.locator("img[src*='evil.example']").count() == 0, link
        assert main.locator("b", has_text="bold").count() == 0, link
        longest = max(len(t) for t in main.locator("code").all_inner_texts())
        assert longest < 300, (link, longest)  # echoes are cut short
    from urllib.parse import urlparse

    assert not [u for u in requests if urlparse(u).hostname == "evil.example"]  # nothing fetched
    assert not page.errors, page.errors
