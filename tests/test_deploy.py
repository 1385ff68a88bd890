"""Deployment without a Docker engine: lint the Dockerfile, then start what the image
would contain, as the image would start it, and ask its health endpoint."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from kwta.explorer.images import MAX_UPLOAD_BYTES

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is needed in CI (requirements-dev.txt installs it)")
        pytest.skip(f"{tool} not installed")
    return path


def test_dockerfile_lints_clean() -> None:
    res = subprocess.run(
        [_need("hadolint"), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, args = line.partition(" ")
            out.append((op.upper(), args.strip()))
    return out


def test_image_runs_as_non_root_with_healthcheck() -> None:
    ops = dict(_instructions())
    assert ops["USER"] not in ("root", "0")
    assert ops["EXPOSE"] == "8501"
    assert "/_stcore/health" in ops["HEALTHCHECK"]
    assert "STREAMLIT_BROWSER_GATHER_USAGE_STATS=false" in ops["ENV"]
    assert "STREAMLIT_SERVER_HEADLESS=true" in ops["ENV"]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {"tests", "runs", "artifacts", ".git"} <= set(ignored)


def test_streamlit_config_is_safe() -> None:
    cfg = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["enableXsrfProtection"] is True
    # the widget's and the browser's limit (MB of 10**6 bytes, as MAX_UPLOAD_BYTES); the
    # server's own check counts MiB, so it never refuses what the browser lets through
    assert cfg["server"]["maxUploadSize"] * 10**6 == MAX_UPLOAD_BYTES
    assert cfg["browser"]["gatherUsageStats"] is False


def _image_copy(dest: Path) -> tuple[list[str], dict[str, str]]:
    """Copy what the Dockerfile COPYs into ``dest``; return its CMD and ENV."""
    env: dict[str, str] = {}
    cmd: list[str] = []
    for op, args in _instructions():
        if op == "COPY":
            *sources, _target = shlex.split(args)
            for src in sources:
                s = REPO / src.rstrip("/")
                if s.is_dir():
                    shutil.copytree(s, dest / s.name, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(s, dest / s.name)
        elif op == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
        elif op == "CMD":
            cmd = json.loads(args)
    return cmd, env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode(errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _navigate(url: str) -> tuple[int, str | None]:
    """A browser's page request for ``url``, redirects not followed: status and Location."""
    req = urllib.request.Request(url, headers={"Sec-Fetch-Mode": "navigate", "Accept": "text/html"})
    try:
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=5) as r:
            return r.status, None
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Location")


@pytest.mark.parametrize("base_path", ["", "explorer"])
def test_image_contents_start_and_answer_health(tmp_path: Path, base_path: str) -> None:
    """The image's CMD, in a clean copy of the image's files, serves the app (also at a
    reverse-proxy sub-path)."""
    cmd, image_env = _image_copy(tmp_path)
    assert cmd[:2] == ["streamlit", "run"]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMLIT_", "KWTA_"))}
    env |= image_env | {
        "STREAMLIT_SERVER_ADDRESS": "127.0.0.1",  # never listen beyond this machine here
        "STREAMLIT_SERVER_PORT": str(port),
        "STREAMLIT_SERVER_BASE_URL_PATH": base_path,
        "PYTHONPATH": str(tmp_path),  # the image installs the copy with `pip install -e .`
    }
    exe = [sys.executable, "-m", "streamlit", *cmd[1:]]
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(exe, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    prefix = f"http://127.0.0.1:{port}" + (f"/{base_path}" if base_path else "")
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = _get(f"{prefix}/_stcore/health")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"server did not come up:\n{log.read_text()}")
                time.sleep(0.5)
        assert (status, body.strip()) == (200, "ok")
        status, html = _get(f"{prefix}/")
        assert status == 200 and "<html" in html.lower()
        # an unknown nested path goes to the start page with a not-found notice
        # (Streamlit alone would serve a blank page there: streamlit/streamlit#8013) ...
        root = f"/{base_path}" if base_path else ""
        assert _navigate(f"{prefix}/zoo/extra") == (303, f"{root}/?not_found=zoo%2Fextra")
        assert _navigate(f"{prefix}/nonexistent") == (303, f"{root}/?not_found=nonexistent")
        # the job queue's state, for whoever runs the server
        status, body = _get(f"{prefix}/api/jobs")
        assert status == 200
        assert json.loads(body) == {"running": 0, "waiting": 0, "max_jobs": 1, "peak_running": 0}
        # ... while pages, assets and the server's own paths are served as before
        assert _navigate(f"{prefix}/zoo") == (200, None)
        assert _navigate(f"{prefix}/static/nothing/here.js")[0] != 303
        js = re.search(r'src="\./(static/js/[^"]+)"', html)
        assert js, "no script in the HTML shell"
        with urllib.request.urlopen(f"{prefix}/{js.group(1)}", timeout=5) as r:
            assert "javascript" in r.headers.get("Content-Type", "")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert "Traceback" not in log.read_text()


def test_unknown_paths_go_to_the_start_page_and_nothing_else_does() -> None:
    from kwta.explorer.routes import MAX_ECHO, PAGE_PATHS, not_found_target

    assert not_found_target("/zoo/extra") == "/?not_found=zoo%2Fextra"
    # one segment that is no page: the start page lives at the root only, and case counts
    for unknown in ("nonexistent", "Zoo", "overview"):
        assert not_found_target(f"/{unknown}") == f"/?not_found={unknown}"
    assert not_found_target("/nonexistent", "/explorer") is None  # not under the base path
    assert not_found_target("/explorer/nope/", "/explorer") == "/explorer/?not_found=nope"
    for page in PAGE_PATHS:
        assert not_found_target(f"/{page}") is None and not_found_target(f"/{page}/") is None
    assert not_found_target("/favicon.png") is None  # a file the server may serve itself
    assert not_found_target("/explorer/", "/explorer") is None
    assert not_found_target("/a/b/c/") == "/?not_found=a%2Fb%2Fc"
    assert (
        not_found_target("/explorer/zoo/extra", "/explorer") == "/explorer/?not_found=zoo%2Fextra"
    )
    # markup in the path is only ever a quoted query value
    assert not_found_target("/x/<img src=y>") == "/?not_found=x%2F%3Cimg%20src%3Dy%3E"
    long = not_found_target("/a/" + "b" * 5000)
    assert long is not None and len(long) < MAX_ECHO + 40
    for served in (
        "/",
        "/zoo",
        "/static/js/x.js",
        "/_stcore/health",
        "/media/abc.png",
        "/component/x/index.html",
        "/app/static/f.png",
    ):
        assert not_found_target(served) is None, served
    assert not_found_target("/explorer/zoo", "/explorer") is None  # a page under the base
    assert not_found_target("/zoo/extra", "/explorer") is None  # not under the base path
    assert not_found_target("/explorer/static/js/x.js", "/explorer") is None


def test_dockerfile_builds_for_older_drivers_by_argument() -> None:
    """ARG TORCH_CUDA picks PyTorch's CUDA variant; its pins are requirements.txt's."""
    ops = _instructions()
    assert ("ARG", "TORCH_CUDA=cu130") in ops
    run = next(args for op, args in ops if op == "RUN" and "TORCH_CUDA" in args)
    reqs = (REPO / "requirements.txt").read_text()
    for pin in re.findall(r'"(torch(?:vision)?==[\d.]+)"', run):
        assert pin in reqs.split()
    assert len(re.findall(r'"(torch(?:vision)?==[\d.]+)"', run)) == 2
    assert "whl/${TORCH_CUDA}" in run and "pip install -r requirements.txt" in run
