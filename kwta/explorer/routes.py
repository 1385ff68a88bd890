"""What the server answers before Streamlit does: the job queue's state, and unknown nested paths.

``GET BASE/api/jobs`` returns the process's job queue as JSON (running, waiting,
the limit and the peak: counts only, no session or user data), for a teacher or an
orchestrator to see whether the server is busy.

A page is one path segment (``/zoo``, :data:`PAGE_PATHS`). For an unknown *nested* path
such as ``/zoo/extra`` Streamlit answers with its HTML shell, whose relative asset links
then resolve under ``/zoo/`` and come back as HTML too — the browser shows a blank page
(streamlit/streamlit#8013); an unknown one-segment path (``/nonexistent``, ``/Zoo``) it
serves as the start page, with at most a passing notice. :class:`ExplorerMiddleware`
(mounted by ``app/server.py``) sends both kinds of page request to the app's start page
with the path in ``?not_found=``, where ``app/main.py`` says, as inert text, that there is
no such page. Asset, API and WebSocket requests are never touched, and neither is anything
under the server's reserved prefixes or a one-segment file name (``/favicon.png``). No
Streamlit import: the server loads this before any page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse, RedirectResponse

from kwta.explorer.jobs import default_queue

#: The job queue's state, under the server's base path.
JOBS_PATH = "/api/jobs"
#: The query parameter that carries the path nobody serves.
NOT_FOUND_PARAM = "not_found"
#: First path segments that belong to Streamlit's server, never to a page.
RESERVED = frozenset({"_stcore", "static", "component", "media", "app", "auth", "oauth2callback"})
#: The pages' URL paths (``st.Page``'s, from the views' file names; ``app/main.py`` checks that
#: they are its pages'). The start page, ``views/overview.py``, is served at the root only.
PAGE_PATHS = frozenset(
    {"lesson", "attack", "landscape", "attack_path", "toy_fit", "patterns", "adaptive", "zoo"}
)
#: The longest path echoed back (the rest is cut).
MAX_ECHO = 200


def _base_path() -> str:
    from streamlit import config

    base = str(config.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}" if base else ""


def not_found_target(path: str, base: str = "") -> str | None:
    """Where a page request for ``path`` should go instead, or ``None`` to serve it.

    Args:
        path: The request's URL path (with the server's base path, if any).
        base: The server's base path, ``""`` or ``"/explorer"``.

    Returns:
        ``BASE/?not_found=PATH`` for a path after the base whose first segment is not
        one of Streamlit's (:data:`RESERVED`) and that is not a page (:data:`PAGE_PATHS`)
        or a one-segment file name (a dot in it); ``None`` otherwise (the root included).
    """
    if base:
        if not path.startswith(base + "/"):
            return None
        path = path[len(base) :]
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] in RESERVED:
        return None
    if len(parts) == 1 and (parts[0] in PAGE_PATHS or "." in parts[0]):
        return None
    echo = "/".join(parts)[:MAX_ECHO]
    return f"{base}/?{NOT_FOUND_PARAM}={quote(echo, safe='')}"


class ExplorerMiddleware:
    """ASGI middleware: ``BASE/api/jobs``, and a page request for an unknown path → the start page.

    Only top-level navigations (``Sec-Fetch-Mode: navigate``, or, from a client that
    does not send that header, ``GET``/``HEAD`` asking for ``text/html``) are
    redirected, with 303 See Other.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http" and scope.get("method") in {"GET", "HEAD"}:
            if scope.get("path", "") == _base_path() + JOBS_PATH:
                headers_out = {"Cache-Control": "no-store"}
                await JSONResponse(default_queue().state(), headers=headers_out)(
                    scope, receive, send
                )
                return
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            mode = headers.get("sec-fetch-mode")
            navigation = mode == "navigate" or (
                mode is None and "text/html" in headers.get("accept", "")
            )
            target = not_found_target(scope.get("path", ""), _base_path()) if navigation else None
            if target is not None:
                await RedirectResponse(target, status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)
