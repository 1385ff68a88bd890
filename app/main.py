"""k-WTA Explorer, the app script (served by ``streamlit run app/server.py``).

The entry point: page configuration, navigation between the pages in
``app/views/`` and the sidebar's device line. (Not ``app/pages/``: Streamlit
also discovers that folder as old-style pages, and a deep link such as ``/zoo``
opened on a fresh server would then run the page without this entry script.)
The pages only render; every computation is a call into :mod:`kwta`.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:  # streamlit run adds it; AppTest and other runners may not
    sys.path.insert(0, str(APP_DIR))

import streamlit as st  # noqa: E402
import ui  # noqa: E402

from kwta.explorer.routes import NOT_FOUND_PARAM, PAGE_PATHS  # noqa: E402

#: The browser tab's icon, served by the app itself: a Material icon as page icon makes every
#: browser fetch it from an outside font server (nothing leaves a classroom's box).
ICON = APP_DIR / "assets" / "icon.png"

st.set_page_config(
    page_title="k-WTA Explorer",
    page_icon=str(ICON),
    layout="wide",
    initial_sidebar_state="expanded",
)

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page("views/lesson.py", title="Lesson", icon=":material/school:"),
    st.Page("views/attack.py", title="Live attack", icon=":material/bolt:"),
    st.Page("views/landscape.py", title="Loss landscape", icon=":material/landscape:"),
    st.Page("views/attack_path.py", title="Attack path", icon=":material/route:"),
    st.Page("views/toy_fit.py", title="1-D toy fit", icon=":material/show_chart:"),
    st.Page("views/patterns.py", title="Activation patterns", icon=":material/grid_on:"),
    st.Page("views/adaptive.py", title="Is k-WTA really robust?", icon=":material/gpp_maybe:"),
    st.Page("views/zoo.py", title="Model zoo", icon=":material/inventory_2:"),
]

if {p.url_path for p in PAGES} - {""} != PAGE_PATHS:  # what the server treats as a page
    raise RuntimeError("kwta.explorer.routes.PAGE_PATHS are not the pages' URL paths")

ui.setup_logging()
page = st.navigation(PAGES)
ui.sidebar_device_info()
if NOT_FOUND_PARAM in st.query_params:  # an unknown path, sent here by app/server.py
    missing = st.query_params.pop(NOT_FOUND_PARAM)
    st.warning(
        f"Page not found: there is no page at {ui.literal('/' + missing)}. "
        "Here is the start page; the pages are listed on the left.",
        icon=":material/link_off:",
    )
ui.start_page()  # the page binds its own URL keys (ui.init_state) and writes them (ui.sync_url)
page.run()
