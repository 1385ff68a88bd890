"""The explorer's server: ``streamlit run app/server.py`` (what the Docker image runs).

The app is ``app/main.py``; this wraps it in :class:`streamlit.App` to add what
Streamlit's own server lacks: a not-found answer for unknown nested paths
(:class:`routes.ExplorerMiddleware`) instead of a blank page. ``streamlit run
app/main.py`` still works, without that.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))

from routes import ExplorerMiddleware  # noqa: E402

app = st.App(APP_DIR / "main.py", middleware=[Middleware(ExplorerMiddleware)])
