"""Long work on a page: a computation in a worker thread with a progress bar, the job
queue's place, a live partial result, the expected time before the click, and whether
to show a result again.

- :func:`run_with_progress` runs a cached computation and shows its progress (and its
  place in :func:`kwta.explorer.jobs.default_queue`; it stops a job that outruns
  ``$KWTA_MAX_JOB_SECONDS``); :func:`kwta.explorer.jobs.queued_job` is how the cached
  function takes a slot (so cache hits never queue);
- :func:`expected_time` states a job's expected time before the click;
- :func:`remember_run` keeps results on screen while their settings stay the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import streamlit as st

from kwta.explorer import jobs
from kwta.explorer.estimates import Estimate
from kwta.explorer.jobs import ProgressSink, progress_text

T = TypeVar("T")


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
