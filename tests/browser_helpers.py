"""Shared by the tests driving a real server and browser (``test_browser``, ``test_load``).

- :func:`launch_browser`: Debian's headless Chromium through Playwright, or a skip
  (locally) / failure (CI, ``$CI`` set) when either is missing;
- :func:`streamlit_server`: ``streamlit run app/server.py`` on a free local port with
  a model zoo, its stdout/stderr in a log file;
- :func:`wait_idle`: until a page has rendered and no script run is in progress.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from app_fixtures import APP_SERVER, REPO, in_ci

CHROMIUM = os.environ.get("KWTA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # WebGL (plotly's 3-D surfaces) on the CPU: Chromium no longer falls back to
    # SwiftShader on its own.
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1440, "height": 900}
RUN_TIMEOUT_MS = 240_000  # a busy 2-core CI machine


def unavailable(reason: str) -> None:
    """Skip the test locally; fail it in CI."""
    if in_ci():
        pytest.fail(f"browser tests need {reason} in CI")
    pytest.skip(reason)


@contextmanager
def launch_browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright (skip locally, fail in CI, if missing)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package (pip install playwright)")
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as err:
        pw.stop()
        unavailable(f"a Chromium that starts ({err})")
    try:
        yield b
    finally:
        b.close()
        pw.stop()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def streamlit_server(
    zoo: Path, log_path: Path, **env_extra: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``streamlit run app/server.py`` on a free port; yields its URL and process.

    The server sees the zoo as ``$KWTA_PRETRAINED``, the bundled images (no
    ``$KWTA_DATA``) and ``env_extra``; it is terminated on exit.
    """
    port = free_port()
    env = dict(os.environ, KWTA_PRETRAINED=str(zoo), PYTHONUNBUFFERED="1", **env_extra)
    env.pop("KWTA_DATA", None)  # the bundled images: fast and deterministic
    log = log_path.open("w")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_SERVER),
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer within 120 s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def wait_idle(p: Any, timeout: int = RUN_TIMEOUT_MS) -> None:
    """Until the app has rendered and no script run is in progress."""
    p.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    p.wait_for_selector('[data-testid="stSidebar"]', timeout=timeout)
    p.wait_for_timeout(500)
    p.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"] button')",
        timeout=timeout,
    )
    p.wait_for_timeout(300)
