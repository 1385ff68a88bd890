"""UI helpers shared by the pages of the k-WTA Explorer.

- models: :func:`model_cards`, :func:`get_model` (``st.cache_resource``, shared by every
  session and never mutated), :func:`model_picker`, :func:`require_models`;
- images: :func:`image_picker` (bundled CIFAR-10 test image by class or index, a
  random one, or an upload decoded by :func:`kwta.explorer.images.decode_user_image`);
- URL state: :func:`init_state` / :func:`sync_url` keep every selection in
  ``st.query_params`` so a link reproduces the exact view;
- long work: :func:`run_with_progress` runs a cached computation in a worker
  thread and shows its progress (and live partial results, or its place in the
  job queue; it stops a job that outruns ``$KWTA_MAX_JOB_SECONDS``);
  :func:`kwta.explorer.jobs.queued_job` is how a cached function takes a slot of the
  process-wide :func:`kwta.explorer.jobs.default_queue` (so cache hits never queue);
- :func:`capped` limits extreme parameters with a visible message; :func:`expected_time`
  states a job's expected time before the click; downloads.

The pages import this module as ``explorer_ui``: ``app/`` is the script folder,
which ``app/main.py`` puts on ``sys.path`` (``streamlit run`` does too).
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import streamlit as st
import torch
from torch import Tensor, nn

from kwta import doctor
from kwta.data import CIFAR10_CLASSES, CIFAR10Tensors, DataSourceError, cifar10, cifar10_sample
from kwta.explorer import jobs
from kwta.explorer.estimates import Estimate
from kwta.explorer.images import MAX_UPLOAD_MB, ImageError, decode_user_image, to_png_bytes
from kwta.explorer.jobs import ProgressSink, progress_text
from kwta.explorer.runs import from_uint8, to_uint8
from kwta.utils import default_device
from kwta.zoo.hub import WeightsError, list_pretrained, load_pretrained, pretrained_dir
from kwta.zoo.summary import summarize_card

T = TypeVar("T")

#: Where every model runs: CUDA when available, else CPU.
DEVICE: torch.device = default_device()
ON_GPU: bool = DEVICE.type == "cuda"

#: Most PGD steps one run may take (keeps a CPU session responsive).
MAX_STEPS = 200
#: Largest loss-landscape grid side (101² = 10 201 forward passes per model).
MAX_GRID = 101


def _max_queries() -> int:
    raw = os.environ.get("KWTA_MAX_QUERIES", "")
    try:
        value = int(raw) if raw.strip() else 0
    except ValueError:
        value = 0
    return value if value > 0 else (200_000 if ON_GPU else 20_000)


#: Most model evaluations one adaptive attack may spend on an image (``$KWTA_MAX_QUERIES``;
#: default 20 000 on a CPU, 200 000 on a GPU): the shared server's cap.
MAX_QUERIES: int = _max_queries()
#: Upload types offered by the file picker (decoding checks the content anyway).
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]

PAPER_URL = "https://arxiv.org/abs/1905.10510"

TRAIN_HINT = """
No pretrained models were found in `{directory}`.

Train some with the command line (a GPU makes this minutes instead of hours), e.g.

```bash
# App. D.1: natural ReLU and k-WTA-0.1 (incremental fine-tuning from γ = 0.2) ResNet-18s
python -m kwta train --act relu --data ~/cifar10 --out pretrained/
python -m kwta train --act kwta --ratio 0.1 --incremental-from 0.2 --epochs 50 \
    --lr-drop-epoch 50 --data ~/cifar10 --out pretrained/
# a quick CPU demo model (small, on the bundled images)
python -m kwta train --act kwta --ratio 0.1 --width 16 --epochs 5 --out pretrained/
```

or point `KWTA_PRETRAINED` at a folder of model cards. The **Overview** and
**1-D toy fit** pages work without any model.
"""


# --------------------------------------------------------------------------- logging


def setup_logging() -> None:
    """Send the library's INFO messages (e.g. the job queue's peaks) to the server log.

    Idempotent: the entry script calls it on every run.
    """
    logger = logging.getLogger("kwta")
    if any(getattr(h, "_kwta_explorer", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._kwta_explorer = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


# --------------------------------------------------------------------------- layout


def sidebar_device_info() -> None:
    """Device and versions in the sidebar (what runs the computations)."""
    if ON_GPU:
        name = torch.cuda.get_device_name(DEVICE)
        st.sidebar.success(f"**Device:** CUDA · {name}", icon=":material/memory:")
    else:
        st.sidebar.info(
            f"**Device:** CPU ({torch.get_num_threads()} threads) — no CUDA GPU found",
            icon=":material/memory:",
        )
    status, summary = self_check()
    if status == "ok":
        st.sidebar.caption(":material/check_circle: Self-check: all checks passed")
    else:
        show = st.sidebar.error if status == "fail" else st.sidebar.warning
        show(f"**Self-check:** {summary} (details: `python -m kwta doctor`)")
    cards = model_cards()
    st.sidebar.caption(
        f"torch {torch.__version__} · {len(cards)} pretrained model(s) in `{display_dir()}` · "
        f"[paper]({PAPER_URL})"
    )


@st.cache_resource(show_spinner=False)
def self_check() -> tuple[str, str]:
    """:mod:`kwta.doctor`'s verdict, computed once per server process (and logged in full)."""
    checks = doctor.run_checks()
    report = doctor.format_report(checks)
    logging.getLogger("kwta.app").info("self-check at server start:\n%s", report)
    return doctor.verdict(checks)


def pct(v: float | None, digits: int = 1) -> str:
    """``0.1234`` → ``"12.3%"``; ``None`` → ``"—"``."""
    return "—" if v is None else f"{100.0 * v:.{digits}f}%"


# --------------------------------------------------------------------------- URL state


def _parse(raw: Any, default: Any, item: type | None = None) -> Any:
    """A query-parameter string as the type of ``default``; ``ValueError`` if it does not fit.

    Lists are comma-separated; their items are converted by ``item`` (default: the type
    of the default's first item, else ``str``).
    """
    if isinstance(raw, list):
        raw = raw[-1] if raw else ""
    text = str(raw)
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            v = float(text)
            if not math.isfinite(v):
                raise
            return int(v)
    if isinstance(default, float):
        v = float(text)
        if not math.isfinite(v):
            raise ValueError(text)
        return v
    if isinstance(default, (list, tuple)):
        conv = item or (type(default[0]) if default else str)
        return [conv(t) for t in text.split(",") if t]
    return text


def url_value(value: Any) -> str:
    """A widget value as it is written into the URL (and read back by :func:`init_state`)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def shown_value(value: Any) -> str:
    """A value from a link as a notice quotes it: :func:`url_value`, with a whole number of
    more than twelve digits (``1e308`` read as an integer) in scientific notation."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**12:
        digits = str(abs(value))
        return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"
    return url_value(value)


#: Prefix of the session's copies of widget values (see :func:`sync_url`).
_KEPT = "_kept_"


def init_state(
    key: str,
    default: Any,
    *,
    choices: Sequence[Any] | None = None,
    lo: float | None = None,
    hi: float | None = None,
    item: type | None = None,
    max_items: int | None = None,
) -> None:
    """Give widget ``key`` its first value: from the URL if valid, else the value it had when
    the user last left the page, else ``default``.

    Call before creating the widget (which then takes no ``value``/``index``).
    Values outside ``choices`` or ``[lo, hi]`` are replaced (clamped) so the widget
    accepts them; an unusable URL value falls back to the default with a notice.
    ``item`` is the type of list items (multiselects), ``max_items`` their most.
    """
    state = st.session_state
    from_link = False
    if key in state:
        value = state[key]
    else:
        # the session's last value (kept by sync_url): Streamlit drops a widget's state when
        # a run does not draw it, e.g. while the user is on another page
        value = state.get(_KEPT + key, default)
        raw = st.query_params.get_all(key) if key in st.query_params else None
        if raw:
            try:
                value = _parse(raw, default, item)
                from_link = True
            except ValueError:
                _notice(f"Ignored the link's value {literal(raw[-1])} for `{key}`.")
    asked = value
    if choices is not None:
        if isinstance(value, list):
            value = list(dict.fromkeys(v for v in value if v in choices))[:max_items]
            if not value and asked and isinstance(default, list):
                value = [v for v in default if v in choices]  # none known: the default selection
        elif value not in choices:
            value = default if default in choices else (choices[0] if choices else None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and value < lo:
            value = type(value)(lo)
        if hi is not None and value > hi:
            value = type(value)(hi)
    if from_link and value != asked:
        what = "not among the choices" if choices is not None else "outside the allowed range"
        shown = value if not isinstance(value, list) else ", ".join(map(str, value)) or "none"
        _notice(
            f"The link's value {literal(shown_value(asked))} for `{key}` is {what}; "
            f"using {literal(shown)} instead."
        )
    state[key] = value


def sync_url(keys: Sequence[str], **extra: Any) -> None:
    """Write the current values of ``keys`` (and ``extra``) to the URL, replacing what was there,
    and keep a copy that :func:`init_state` restores when the user comes back to the page."""
    params: dict[str, str] = {}
    for k in keys:
        if k in st.session_state and st.session_state[k] is not None:
            params[k] = url_value(st.session_state[k])
            st.session_state[_KEPT + k] = st.session_state[k]
    params.update({k: url_value(v) for k, v in extra.items() if v is not None})
    current = {k: st.query_params.get(k) for k in st.query_params}
    if current != params:
        st.query_params.from_dict(params)


def literal(value: object, limit: int = 60) -> str:
    """User-supplied text as an inline code span: never Markdown or HTML, one line, short.

    Backticks (which could close the span) become ``'``, line breaks and other
    control characters become spaces, and anything past ``limit`` characters is
    cut with an ellipsis, so a link or a file name can neither inject a link, an
    image or markup into a message nor flood it.
    """
    text = "".join(ch if ch.isprintable() else " " for ch in str(value)).replace("`", "'")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`" if text.strip() else "`(empty)`"


def display_dir() -> str:
    """The model folder as a visitor may see it: never this server's absolute path."""
    return "$KWTA_PRETRAINED" if os.environ.get("KWTA_PRETRAINED") else "pretrained/"


def _notice(msg: str) -> None:
    st.session_state.setdefault("_ui_notices", []).append(msg)


def show_notices() -> None:
    """Show (once) the notices collected while reading the URL."""
    for msg in st.session_state.pop("_ui_notices", []):
        st.warning(msg, icon=":material/link_off:")


def expected_time(estimate: Estimate | None) -> None:
    """Before the click: the job's expected time on this server (:mod:`kwta.explorer.estimates`),
    as a warning when a job would pass the server's limit per job."""
    if estimate is None:
        return
    try:
        cap = jobs.default_max_job_seconds()
    except ValueError:  # a bad $KWTA_MAX_JOB_SECONDS: the run itself says so
        cap = None
    if cap is not None and estimate.exceeds(cap):
        st.warning(
            f"Expected time: {estimate.text()} — more than the {cap:g} s one job may run on "
            "this shared server, so it would be stopped before the end: choose lighter settings.",
            icon=":material/timer:",
        )
    else:
        st.caption(f"Expected time: {estimate.text()}.")


def capped(value: int, limit: int, what: str, *, why: str = "to keep the app responsive") -> int:
    """``min(value, limit)``, with a visible warning when the limit applies."""
    if value > limit:
        st.warning(f"{what} capped at {limit} (asked for {value}) {why}.", icon=":material/speed:")
        return limit
    return value


# --------------------------------------------------------------------------- models


def model_cards() -> dict[str, dict[str, Any]]:
    """Cards of the pretrained models (``pretrained/`` or ``$KWTA_PRETRAINED``), by name."""
    return list_pretrained()


@st.cache_resource(show_spinner="Loading model…", max_entries=16)
def _load_model(name: str, sha256: str, directory: str, device: str) -> nn.Module:
    """One shared, eval-mode copy per (name, weights, device). Never mutate the result."""
    del sha256  # part of the cache key only: new weights under the same name reload
    model = load_pretrained(name, device, directory=directory)
    for p in model.parameters():  # attacks need input gradients only
        p.requires_grad_(False)
    return model.eval()


def get_model(name: str | None) -> nn.Module | None:
    """The cached model ``name``, or ``None`` with an error shown (missing or bad weights)."""
    if not name:
        return None
    cards = model_cards()
    if name not in cards:
        st.error(f"No pretrained model named {literal(name)} in {display_dir()}.")
        return None
    try:
        return _load_model(
            name, str(cards[name].get("sha256", "")), str(pretrained_dir()), str(DEVICE)
        )
    except (WeightsError, KeyError, ValueError, TypeError, RuntimeError) as err:
        st.error(f"Cannot load model {literal(name)}: {literal(err, 200)}", icon=":material/error:")
        return None


def unit_seconds(
    names: Sequence[str], pixels: np.ndarray, unit: Callable[..., float]
) -> list[float]:
    """Each loadable model's unit time, ``unit(model, x, key=...)`` from
    :mod:`kwta.explorer.estimates` (timed once per model on this server), for an estimate.
    A model that does not load is left out here; the run itself says why."""
    cards, x, times = model_cards(), from_uint8(pixels), []
    for name in names:
        if name not in cards:
            continue
        sha = str(cards[name].get("sha256", ""))
        try:
            model = _load_model(name, sha, str(pretrained_dir()), str(DEVICE))
        except (WeightsError, KeyError, ValueError, TypeError, RuntimeError):
            continue
        times.append(unit(model, x, key=(name, sha)))
    return times


def model_label(cards: Mapping[str, Mapping[str, Any]], name: str) -> str:
    """``"kwta0.1-nat — k-WTA-0.1 · natural · w64"`` for pickers."""
    if name not in cards:
        return name
    s = summarize_card(cards[name])
    width = f" · w{s.width}" if s.width else ""
    return f"{name} — {s.activation_label} · {s.method or '?'}{width}"


def model_picker(
    key: str,
    cards: Mapping[str, Mapping[str, Any]],
    default: str | None,
    *,
    label: str = "Model",
    none: str | None = None,
) -> str | None:
    """A sidebar model selectbox whose value a link or a page switch can set.

    Args:
        key: Widget and URL key.
        cards: The models to offer (name → card), labelled by :func:`model_label`.
        default: The preselected model (else the ``none`` entry, else the first model).
        label: The widget's label.
        none: An extra first option meaning "no model" (e.g. ``"(none)"``), if any.

    Returns:
        The chosen model's name, or ``None`` for the ``none`` option.
    """
    names = list(cards)
    options = [none, *names] if none is not None else names
    init_state(key, default if default in names else (none or names[0]), choices=options)
    st.sidebar.selectbox(
        label,
        options,
        key=key,
        format_func=lambda n: n if n == none else model_label(cards, n),
    )
    value = st.session_state[key]
    return None if value == none else str(value)


def require_models() -> dict[str, dict[str, Any]] | None:
    """The model cards, or ``None`` after explaining how to train models."""
    cards = model_cards()
    if not cards:
        st.warning(TRAIN_HINT.format(directory=display_dir()), icon=":material/model_training:")
        return None
    return cards


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class PickedImage:
    """The image a page works on.

    Attributes:
        pixels: ``uint8`` array ``(3, 32, 32)`` (cache-friendly, exact).
        label: The true class (the user's choice for uploads).
        caption: What to show under the thumbnail.
        source: Short provenance, e.g. ``"test #17"`` or ``"upload cat.png"``.
    """

    pixels: np.ndarray
    label: int
    caption: str
    source: str

    @property
    def x(self) -> Tensor:
        """``(1, 3, 32, 32)`` float in [0, 1]."""
        return from_uint8(self.pixels)


@st.cache_resource(show_spinner="Loading CIFAR-10 test images…")
def test_images() -> CIFAR10Tensors:
    """CIFAR-10 test images: ``$KWTA_DATA`` if set and usable, else the bundled sample."""
    try:
        return cifar10("test")
    except DataSourceError:
        return cifar10_sample("test")


def _class_indices(data: CIFAR10Tensors, label: int) -> list[int]:
    return [int(i) for i in (data.labels == label).nonzero().flatten().tolist()]


def _bump(key: str) -> None:
    st.session_state[key] = int(st.session_state.get(key, 0)) + 1


def image_picker(prefix: str) -> PickedImage:
    """Sidebar widgets choosing an image; never fails (falls back to a bundled image).

    Modes: a bundled test image by class (and rank within the class) or by
    index, a random one (seeded; the seed is in the URL), or an upload. Upload
    problems are reported with ``st.error`` and resized/converted images with
    ``st.info``; the page then keeps working on the fallback image.
    """
    sb = st.sidebar
    data = test_images()
    n = len(data)
    modes = ["class", "index", "random", "upload"]
    labels = {"class": "by class", "index": "by index", "random": "random", "upload": "upload"}
    k_mode, k_cls, k_nth, k_idx, k_seed = (
        f"{prefix}_{s}" for s in ("img", "cls", "nth", "idx", "imgseed")
    )
    init_state(k_mode, "class", choices=modes)
    sb.radio("Image", modes, format_func=labels.__getitem__, key=k_mode, horizontal=True)
    mode = st.session_state[k_mode]
    url_keys = [k_mode]

    def bundled(index: int) -> PickedImage:
        x, y = data.tensors([index])
        lab = int(y[0])
        return PickedImage(
            pixels=to_uint8(x),
            label=lab,
            caption=f"test image #{index} · {CIFAR10_CLASSES[lab]}",
            source=f"test #{index}",
        )

    picked: PickedImage
    if mode == "class":
        init_state(k_cls, "cat", choices=list(CIFAR10_CLASSES))
        sb.selectbox("Class", list(CIFAR10_CLASSES), key=k_cls)
        idxs = _class_indices(data, CIFAR10_CLASSES.index(st.session_state[k_cls])) or [0]
        init_state(k_nth, 0, lo=0, hi=len(idxs) - 1)
        sb.number_input(
            f"Which {st.session_state[k_cls]} (0–{len(idxs) - 1})", 0, len(idxs) - 1, key=k_nth
        )
        picked = bundled(idxs[int(st.session_state[k_nth])])
        url_keys += [k_cls, k_nth]
    elif mode == "index":
        init_state(k_idx, 0, lo=0, hi=n - 1)
        sb.number_input(f"Test image index (0–{n - 1})", 0, n - 1, key=k_idx)
        picked = bundled(int(st.session_state[k_idx]))
        url_keys.append(k_idx)
    elif mode == "random":
        init_state(k_seed, 0, lo=0, hi=10**9)
        c1, c2 = sb.columns([3, 2], vertical_alignment="bottom")
        c1.number_input("Random seed", 0, 10**9, key=k_seed)
        c2.button(
            "New image",
            key=f"{prefix}_reroll",
            on_click=_bump,
            args=(k_seed,),
            icon=":material/casino:",
        )
        picked = bundled(random.Random(int(st.session_state[k_seed])).randrange(n))
        url_keys.append(k_seed)
    else:
        picked = _upload(prefix, bundled(0))
    sb.image(to_png_bytes(picked.x, scale=4), caption=picked.caption, width=128)
    st.session_state[f"{prefix}_url_keys"] = url_keys
    return picked


def _upload(prefix: str, fallback: PickedImage) -> PickedImage:
    sb = st.sidebar
    k_lab = f"{prefix}_label"
    up = sb.file_uploader(
        f"PNG or JPEG, ≤ {MAX_UPLOAD_MB} MB (resized to 32×32)",
        type=UPLOAD_TYPES,
        key=f"{prefix}_upload",
        # the browser refuses a larger file itself (its MB are 10**6 bytes, as ours)
        max_upload_size=MAX_UPLOAD_MB,
    )
    init_state(k_lab, "cat", choices=list(CIFAR10_CLASSES))
    sb.selectbox("True class of the upload", list(CIFAR10_CLASSES), key=k_lab)
    if up is None:
        sb.info("No file yet: using bundled test image #0.", icon=":material/info:")
        return fallback
    try:
        img = decode_user_image(up.getvalue())
    except ImageError as err:
        st.error(
            f"Cannot use {literal(up.name)}: {literal(err, 200)}. "
            "Showing bundled test image #0 instead.",
            icon=":material/broken_image:",
        )
        return fallback
    for note in img.notices:
        st.info(f"{literal(up.name)}: {note}.", icon=":material/photo_size_select_large:")
    lab = CIFAR10_CLASSES.index(st.session_state[k_lab])
    return PickedImage(
        pixels=to_uint8(img.x),
        label=lab,
        caption=f"upload {literal(up.name)} · labelled {CIFAR10_CLASSES[lab]}",
        source=f"upload {up.name}",
    )


def image_url_keys(prefix: str) -> list[str]:
    """The URL keys of the image picker as last rendered."""
    return list(st.session_state.get(f"{prefix}_url_keys", []))


# --------------------------------------------------------------------------- long work


def _session_watch() -> Callable[[], bool]:
    """``gone()``: whether this script run's browser session has disconnected."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is None or not Runtime.exists():
            return lambda: False
        runtime, session_id = Runtime.instance(), ctx.session_id
    except Exception:  # an older or newer Streamlit without these: never cancel on disconnect
        return lambda: False

    def gone() -> bool:
        try:
            return not runtime.is_active_session(session_id)
        except Exception:
            return False

    return gone


def run_with_progress(
    work: Callable[[ProgressSink], T],
    *,
    label: str,
    on_update: Callable[[Any], None] | None = None,
    poll_s: float = 0.2,
    capped: bool = True,
) -> T:
    """Run ``work(sink)`` in a worker thread while the page shows its progress.

    ``work`` normally calls an ``st.cache_data`` function with the sink as its
    ``_progress`` argument (not hashed): a cache hit returns at once, a miss
    reports progress here. The page thread only reads the sink, so no
    Streamlit element is created inside the cached function (which Streamlit
    would try to replay on later hits). ``on_update(payload)`` is called with
    new payloads (e.g. the trace so far, for a live chart). While the cached
    function waits in the job queue (:func:`kwta.explorer.jobs.queued_job`), the bar says
    so. Once running,
    the job stops at its next progress step after ``$KWTA_MAX_JOB_SECONDS``
    (:func:`kwta.explorer.jobs.default_max_job_seconds`) unless ``capped`` is false (a
    result computed once for every visitor, such as the Lesson's).

    Raises:
        Whatever ``work`` raised.
    """
    sink = ProgressSink(max_seconds=jobs.default_max_job_seconds() if capped else None)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work(sink)
        except BaseException as err:  # re-raised in the page thread
            box["error"] = err

    thread = threading.Thread(target=target, name="kwta-explorer-work", daemon=True)
    thread.start()
    session_gone = _session_watch()
    bar = st.progress(0.0, text=label)
    seen = 0
    try:
        while True:
            thread.join(poll_s)
            if session_gone():  # the tab was closed: nobody waits for this any more
                sink.cancel()
                raise jobs.JobCancelled("the session disconnected")
            version, done, total, payload = sink.snapshot()
            if version != seen:
                seen = version
                frac = min(1.0, done / total) if total else 0.0
                ahead = sink.queue_position()
                max_jobs = jobs.default_queue().max_jobs if ahead is not None else 0
                bar.progress(frac, text=progress_text(label, done, total, ahead, max_jobs))
                if on_update is not None and payload is not None:
                    on_update(payload)
            if not thread.is_alive():
                break
    except BaseException:
        # A rerun, a page switch or a stop interrupts this loop (Streamlit raises here):
        # the work it started is abandoned, so it leaves the queue or stops at its next step.
        sink.cancel()
        raise
    bar.empty()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def remember_run(
    key: str,
    params: Mapping[str, Any],
    clicked: bool,
    *,
    from_link: bool = True,
    light: bool = True,
) -> bool:
    """Whether to show results: the button was clicked, or these exact parameters ran before.

    The page's "Run" button starts a computation; afterwards the results stay on
    screen across reruns (downloads, other widgets) while the parameters are
    unchanged, and a shared link with ``run=1`` shows them directly unless
    ``from_link`` is false (for a costly second computation on the same page, which
    a link should not start on its own) or the settings are not ``light`` (heavier
    than the page's defaults: on a shared server a link may not start more than a
    click on the defaults would, so it waits for the button, and says so).
    """
    frozen = repr(sorted(params.items()))
    if clicked:
        st.session_state[key] = frozen
        return True
    if st.session_state.get(key) == frozen:
        return True
    if from_link and st.query_params.get("run") == "1" and key not in st.session_state:
        if not light:
            st.info(
                "This link asks for more work than the page's defaults, so it does not start "
                "by itself: check the settings and press the button to run it.",
                icon=":material/pan_tool:",
            )
            return False
        st.session_state[key] = frozen
        return True
    return False


_MIME = {".csv": "text/csv", ".json": "application/json", ".png": "image/png"}


def download(container: Any, label: str, data: str | bytes, filename: str, *, key: str) -> None:
    """A download button whose MIME type follows the file name; it does not rerun the page."""
    container.download_button(
        label,
        data,
        filename,
        _MIME[filename[filename.rfind(".") :]],
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )
