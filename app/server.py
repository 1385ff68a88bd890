"""The explorer's server: ``streamlit run app/server.py`` (what the Docker image runs).

The app is ``app/main.py``; this wraps it in :class:`streamlit.App` to add what
Streamlit's own server lacks: a not-found answer for unknown nested paths
(:class:`kwta.explorer.routes.ExplorerMiddleware`) instead of a blank page. ``streamlit run
app/main.py`` still works, without that.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from kwta.explorer.routes import ExplorerMiddleware

APP_DIR = Path(__file__).resolve().parent

app = st.App(APP_DIR / "main.py", middleware=[Middleware(ExplorerMiddleware)])
