"""Start the built Docker image and use it as a lab would; measure it; write a report.

    python scripts/check_image.py [--image kwta-explorer] [--out artifacts/image]
                                  [--browser] [--keep]

Every request goes to 127.0.0.1: the container's port is published on the loopback address
only. Steps, each recorded in ``OUT/image.json`` (and ``OUT/image.md``):

1. ``docker run`` → the container's HEALTHCHECK reports ``healthy`` (seconds measured);
2. the health endpoint and the start page answer on the published port;
3. ``python -m kwta doctor`` inside the container exits 0; the server runs as a non-root user;
   every model in the image's ``pretrained/`` loads, sha256-checked;
4. memory at idle, and its peak during a PGD-40 run of a k-WTA model on 100 test images
   inside the container (``docker stats``, sampled twice a second);
5. with ``--browser``: the browser suite (``tests/test_browser.py``) against the container,
   and the peak memory during it;
6. with ``--classroom N [N ...]``: N browser sessions at once, each running a Live-attack
   link against the container (``scripts/classroom.py``): done / failed / never answered,
   time to result, the server's job log (wait and run time per job), peak memory;
7. ``docker restart`` → healthy again (seconds measured); the log has no traceback;
8. with ``--compose``: ``compose.yaml`` brought up by the compose implementation found here
   (``docker compose``, Debian's ``docker-compose`` or ``podman-compose``) on the CPU,
   published on 127.0.0.1 (``KWTA_BIND``): healthy, the start page served, one page action
   (a 10-step Live attack in Chromium) answers; ``compose.gpu.yaml`` adds the GPU
   reservation and nothing else (``config`` of both); then ``down``.

Needs a Docker engine (``scripts/build_image.sh`` builds the image; where no daemon runs,
this script starts ``dockerd`` for its duration when it is installed and this is root).
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from classroom import PeakMemory, memory_mb

REPO = Path(__file__).resolve().parents[1]
NAME = "kwta-explorer-check"
COMPOSE_PROJECT = "kwta-explorer-check"

PGD_SNIPPET = """
import time, torch
from kwta import load_pretrained
from kwta.zoo.hub import list_pretrained
from kwta.zoo.summary import default_pair
from kwta.data import cifar10
from kwta.attacks import pgd_linf
from kwta import paper
name = default_pair(list_pretrained())[1]
net = load_pretrained(name)
x, y = cifar10("test").tensors(range(100))
t = time.perf_counter()
adv = pgd_linf(net, x, y, eps=paper.EPS, alpha=0.003, steps=40,
               generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    acc = float((net(adv).argmax(1) == y).float().mean())
print(f"{name} PGD-40 on 100 images: robust {acc:.2f} in {time.perf_counter() - t:.1f} s")
"""

LOAD_SNIPPET = """
from kwta.zoo.hub import list_pretrained, load_pretrained
names = list_pretrained()
for n in names:
    load_pretrained(n)
print(len(names), "models loaded, sha256 checked:", ", ".join(names))
"""


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_engine() -> subprocess.Popen | None:
    """A running engine, or one started here (returned, to be stopped at the end)."""
    if shutil.which("docker") is None:
        sys.exit("no docker client: apt-get install docker.io")
    if docker("info", check=False).returncode == 0:
        return None
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        sys.exit("no Docker engine answers, and none can be started here (needs dockerd, root)")
    log = open("/tmp/kwta-dockerd.log", "w")  # noqa: SIM115 - open for the daemon's lifetime
    proc = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(60):
        if docker("info", check=False).returncode == 0:
            return proc
        time.sleep(1)
    sys.exit("dockerd did not answer within 60 s (log: /tmp/kwta-dockerd.log)")


def health(name: str) -> str:
    res = docker("inspect", "--format", "{{.State.Health.Status}}", name, check=False)
    return res.stdout.strip()


def wait_healthy(name: str, since: float, timeout: float = 240) -> float:
    """Seconds from ``since`` until the container's HEALTHCHECK says ``healthy``."""
    while time.monotonic() - since < timeout:
        status = health(name)
        if status == "healthy":
            return round(time.monotonic() - since, 1)
        if status == "unhealthy" or docker("inspect", name, check=False).returncode:
            break
        time.sleep(0.5)
    logs = docker("logs", "--tail", "40", name, check=False)
    raise RuntimeError(f"not healthy ({health(name)!r}):\n{logs.stdout}{logs.stderr}")


def wait_serving(url: str, since: float, timeout: float = 240) -> float:
    """Seconds from ``since`` until ``url`` first answers 200 (polled every 0.2 s)."""
    while time.monotonic() - since < timeout:
        try:
            if get(url)[0] == 200:
                return round(time.monotonic() - since, 1)
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode(errors="replace")


def checker(report: dict[str, Any], failures: list[str]) -> Any:
    """``check(ok, what)``: record a check in ``report``, print PASS/FAIL, collect failures."""

    def check(ok: bool, what: str) -> None:
        report["checks"][what] = bool(ok)
        if not ok:
            failures.append(what)
        print(("PASS " if ok else "FAIL ") + what, flush=True)

    return check


def run_checks(args: argparse.Namespace, report: dict[str, Any]) -> list[str]:
    failures: list[str] = []
    check = checker(report, failures)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    docker("rm", "-f", NAME, check=False)
    t0 = time.monotonic()
    docker("run", "-d", "--name", NAME, "-p", f"127.0.0.1:{port}:8501", args.image)
    report["start_to_serving_s"] = wait_serving(f"{url}/_stcore/health", t0)
    report["start_to_healthy_s"] = wait_healthy(NAME, t0)
    print(f"serving {report['start_to_serving_s']} s after docker run", flush=True)
    print(f"healthy {report['start_to_healthy_s']} s after docker run", flush=True)

    status, body = get(f"{url}/_stcore/health")
    check((status, body.strip()) == (200, "ok"), "health endpoint answers ok on 127.0.0.1")
    status, html = get(f"{url}/")
    check(status == 200 and "<html" in html.lower(), "start page served")

    doctor = docker("exec", NAME, "python", "-m", "kwta", "doctor", check=False)
    report["doctor"] = (doctor.stdout + doctor.stderr).strip().splitlines()
    check(doctor.returncode == 0, "kwta doctor passes inside the container")
    uid = docker("exec", NAME, "id", "-u").stdout.strip()
    report["uid"] = uid
    check(uid not in ("", "0"), "runs as a non-root user")
    loaded = docker("exec", NAME, "python", "-c", LOAD_SNIPPET, check=False)
    report["models"] = loaded.stdout.strip()
    check(loaded.returncode == 0, "every pretrained model loads with its sha256 checked")

    time.sleep(5)
    report["memory_idle_mb"] = memory_mb(NAME)
    with PeakMemory(NAME) as peak:
        pgd = docker("exec", NAME, "python", "-c", PGD_SNIPPET, check=False)
    report["pgd_run"] = (pgd.stdout + pgd.stderr).strip().splitlines()[-1:]
    report["memory_pgd_peak_mb"] = peak.peak
    check(pgd.returncode == 0, "a PGD-40 run inside the container")
    print(f"memory: idle {report['memory_idle_mb']} MB, PGD peak {peak.peak} MB", flush=True)

    if args.browser:
        env = dict(
            os.environ,
            KWTA_BROWSER_URL=url,
            KWTA_BROWSER_PRETRAINED=str(REPO / "pretrained"),
        )
        t = time.monotonic()
        with PeakMemory(NAME) as peak:
            res = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 "-m", "", "tests/test_browser.py"],
                cwd=REPO, env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
        tail = (res.stdout + res.stderr).strip().splitlines()[-1:]
        report["browser_suite"] = {"result": tail, "seconds": round(time.monotonic() - t)}
        report["memory_browser_peak_mb"] = peak.peak
        if res.returncode:
            (Path(args.out) / "browser.log").write_text(res.stdout + res.stderr)
        check(res.returncode == 0, "browser suite passes against the container")

    if args.classroom:
        report["classroom"] = classroom(args, url, check)

    t0 = time.monotonic()
    docker("restart", NAME)
    report["restart_to_healthy_s"] = wait_healthy(NAME, t0)
    print(f"healthy again {report['restart_to_healthy_s']} s after docker restart", flush=True)
    status, _ = get(f"{url}/_stcore/health")
    check(status == 200, "healthy after a restart")
    logs = docker("logs", NAME, check=False)
    text = logs.stdout + logs.stderr
    (Path(args.out) / "container.log").write_text(text)
    check("Traceback" not in text, "the container's log has no traceback")
    return failures


def chromium() -> Any:
    """A context manager yielding a headless Chromium (Playwright) for the page checks."""
    from classroom import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    @contextlib.contextmanager
    def launch() -> Any:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                yield b
            finally:
                b.close()

    return launch()


def classroom(args: argparse.Namespace, url: str, check: Any) -> list[dict[str, Any]]:
    """``scripts/classroom.py`` against the container, once per N in ``--classroom``."""
    from classroom import run_classroom

    results = []
    with chromium() as browser:
        for k, n in enumerate(args.classroom):
            r = run_classroom(browser, url, n, first_index=100 * k, container=NAME)
            print(f"classroom of {n}: {json.dumps(r)}", flush=True)
            results.append(r)
            check(r["done"] == n, f"a classroom of {n}: every session gets its result")
    return results


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin), else ``docker-compose``, else ``podman-compose``."""
    if docker("compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    for tool in ("docker-compose", "podman-compose"):
        if shutil.which(tool):
            return [tool]
    return None


def compose_checks(args: argparse.Namespace, report: dict[str, Any]) -> list[str]:
    """``compose.yaml`` started for real on the CPU (see the module docstring, step 8)."""
    failures: list[str] = []
    check = checker(report, failures)

    cmd = compose_command()
    if cmd is None:
        check(False, "a compose implementation (docker compose, docker-compose, podman-compose)")
        return failures
    version = subprocess.run([*cmd, "version"], capture_output=True, text=True, check=False)
    report["compose"] = {"implementation": " ".join(cmd), "version": version.stdout.split("\n")[0]}
    port = free_port()
    image = args.image if ":" in args.image else f"{args.image}:latest"
    env = dict(
        os.environ,
        KWTA_BIND="127.0.0.1",
        KWTA_PORT=str(port),
        KWTA_IMAGE=image,
        COMPOSE_PROJECT_NAME=COMPOSE_PROJECT,
    )

    def compose(*more: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*cmd, *more], cwd=REPO, env=env, capture_output=True, text=True, check=False,
            timeout=timeout,
        )  # fmt: skip

    cpu = compose("-f", "compose.yaml", "config").stdout
    gpu = compose("-f", "compose.yaml", "-f", "compose.gpu.yaml", "config").stdout
    check(
        "nvidia" not in cpu and "driver: nvidia" in gpu and "capabilities" in gpu,
        "compose.yaml runs on the CPU; compose.gpu.yaml adds the one-GPU reservation",
    )
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    try:
        up = compose("up", "-d", "--no-build")
        check(up.returncode == 0, "compose up -d starts the service")
        if up.returncode:
            report["compose"]["up"] = (up.stdout + up.stderr).strip().splitlines()[-10:]
            return failures
        cid = compose("ps", "-q", "explorer").stdout.strip()
        report["compose"]["start_to_healthy_s"] = wait_healthy(cid, t0)
        print(f"compose: healthy {report['compose']['start_to_healthy_s']} s after up", flush=True)
        status, html = get(f"{url}/")
        check(status == 200 and "<html" in html.lower(), "compose: the start page on 127.0.0.1")
        from classroom import run_classroom

        with chromium() as browser:
            r = run_classroom(browser, url, 1, steps=10, first_index=7, timeout_s=300)
        report["compose"]["page_action"] = r
        check(r["done"] == 1, "compose: a Live-attack link answers with its result")
    finally:
        down = compose("down")
        check(down.returncode == 0, "compose down stops and removes the service")
    return failures


def write_markdown(report: dict[str, Any], path: Path) -> None:
    rows = [
        ("image size", f"{report['image_gb']} GB"),
        ("docker run → health endpoint answers", f"{report['start_to_serving_s']} s"),
        ("docker run → healthy", f"{report['start_to_healthy_s']} s"),
        ("docker restart → healthy", f"{report.get('restart_to_healthy_s', '—')} s"),
        ("memory at idle", f"{report.get('memory_idle_mb', '—')} MB"),
        ("memory peak, PGD-40 on 100 images", f"{report.get('memory_pgd_peak_mb', '—')} MB"),
        ("memory peak, browser suite", f"{report.get('memory_browser_peak_mb', '—')} MB"),
    ]
    if "compose" in report:
        healthy = report["compose"].get("start_to_healthy_s", "—")
        rows.append(("compose up → healthy", f"{healthy} s"))
    lines = ["| measure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), ""]
    if report.get("classroom"):
        from classroom import markdown

        lines += [markdown(report["classroom"]), ""]
    lines += [f"- {'pass' if ok else 'FAIL'}: {what}" for what, ok in report["checks"].items()]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default="kwta-explorer")
    parser.add_argument("--out", default=str(REPO / "artifacts" / "image"))
    parser.add_argument("--browser", action="store_true", help="run the browser suite too")
    parser.add_argument("--keep", action="store_true", help="leave the container running")
    parser.add_argument(
        "--classroom",
        type=int,
        nargs="+",
        default=[],
        metavar="N",
        help="N browser sessions at once, each running a Live attack",
    )
    parser.add_argument("--compose", action="store_true", help="start compose.yaml too")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    engine = ensure_engine()
    report: dict[str, Any] = {"image": args.image, "checks": {}}
    try:
        size = docker("image", "inspect", "--format", "{{.Size}}", args.image, check=False)
        if size.returncode:
            sys.exit(f"no image {args.image!r}: build it with bash scripts/build_image.sh")
        report["image_gb"] = round(int(size.stdout) / 1e9, 2)
        failures = run_checks(args, report)
        if args.compose:
            if not args.keep:
                docker("rm", "-f", NAME, check=False)
            failures += compose_checks(args, report)
    except (RuntimeError, subprocess.SubprocessError, OSError) as err:
        failures = [f"error: {err}"]
        report["error"] = str(err)
        print(f"FAIL {err}", flush=True)
    finally:
        if not args.keep:
            docker("rm", "-f", NAME, check=False)
        if engine is not None:
            engine.terminate()
            engine.wait(timeout=60)
    (out / "image.json").write_text(json.dumps(report, indent=2) + "\n")
    if "start_to_healthy_s" in report:
        write_markdown(report, out / "image.md")
    print(json.dumps({k: v for k, v in report.items() if k not in ("doctor",)}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
