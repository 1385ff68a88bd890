"""What every page shares around its content: the server log and the sidebar's device line."""

from __future__ import annotations

import logging

import streamlit as st
import torch

from kwta import doctor
from ui.config import DEVICE, ON_GPU, PAPER_URL, display_dir
from ui.models import model_cards


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
