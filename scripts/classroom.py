"""How many students one box serves: N browser sessions click at once, measured.

    python scripts/classroom.py --url http://127.0.0.1:8501 --sessions 10 20 30
                                [--steps 40] [--container NAME] [--out FILE.json]

For each N, one headless Chromium opens N sessions (a browser context each, so N separate
Streamlit sessions) at the same moment, each on a Live-attack link with ``run=1`` — the
page's default pair (ReLU beside k-WTA), ``--steps`` PGD steps, its own test image — and
waits until both models' results are on its screen (the page's six download buttons).
Reported per N:

- sessions done / failed (an error or a stopped job on the page) / never answered (still
  waiting after ``--timeout`` seconds);
- p50 / p90 / max seconds from opening the link to the result on screen;
- with ``--container``: the server's side, from its log (one line per job,
  :data:`kwta.explorer.jobs.JOB_LOG_FORMAT`): how many jobs ran, and p50 / p90 / max of
  the seconds each waited in the queue and ran — what the server spent, apart from what
  the browsers cost — the container's CPU seconds (its cgroup) beside the whole machine's
  (``/proc/stat``: the browsers, where they run on the same box), and its peak memory
  (``docker stats``, twice a second).

Every request goes to the ``--url`` given (127.0.0.1 for a container published on the
loopback address). ``scripts/check_image.py --classroom N ...`` runs this against the image.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kwta.explorer.jobs import JOB_LOG_PATTERN  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The Live-attack page shows six download buttons once both models' results are drawn.
RESULT_JS = "() => document.querySelectorAll('[data-testid=\"stDownloadButton\"]').length"
RESULT_BUTTONS = 6
FAILED_JS = (
    "() => document.querySelectorAll('[data-testid=\"stException\"]').length"
    " + (document.body.innerText.includes('stopped after') ? 1 : 0)"
)


def attack_link(url: str, index: int, steps: int) -> str:
    """A Live-attack link on test image ``index`` that runs by itself (the page's pair)."""
    return f"{url}/attack?atk_img=index&atk_idx={index}&atk_steps={steps}&run=1"


def quantiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p90 and max of ``values`` (``None`` when empty), rounded to 0.1."""
    if not values:
        return {"p50": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered), 1),
        "p90": round(p90, 1),
        "max": round(ordered[-1], 1),
    }


def job_lines(log_text: str) -> list[dict[str, Any]]:
    """The server log's job lines (:data:`kwta.explorer.jobs.JOB_LOG_PATTERN`), parsed."""
    return [
        {"outcome": m["outcome"], "waited": float(m["waited"]), "ran": float(m["ran"])}
        for m in re.finditer(JOB_LOG_PATTERN, log_text)
    ]


def memory_mb(container: str) -> float:
    """The container's memory use now (``docker stats``), in MB (0.1 MB steps)."""
    out = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", container],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    m = re.match(r"\s*([\d.]+)\s*([KMG]i?B)", out)
    if not m:
        raise RuntimeError(f"cannot read docker stats: {out!r}")
    unit = {"KiB": 1024, "KB": 1e3, "MiB": 2**20, "MB": 1e6, "GiB": 2**30, "GB": 1e9}
    return round(float(m.group(1)) * unit[m.group(2)] / 1e6, 1)


class PeakMemory:
    """The container's peak memory (``docker stats``, MB, twice a second) while a block runs;
    ``None``: no container, nothing sampled."""

    def __init__(self, container: str | None) -> None:
        self.container, self.peak = container, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                self.peak = max(self.peak, memory_mb(str(self.container)))
            self._stop.wait(0.5)

    def __enter__(self) -> PeakMemory:
        if self.container:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def container_cpu_seconds(container: str) -> float | None:
    """CPU seconds the container has used so far (its cgroup: v1 ``cpuacct`` or v2 ``cpu.stat``)."""
    res = subprocess.run(
        ["docker", "exec", container, "sh", "-c",
         "cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || cat /sys/fs/cgroup/cpu.stat"],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    text = res.stdout.strip()
    if text.isdigit():
        return int(text) / 1e9  # v1: nanoseconds
    m = re.search(r"usage_usec (\d+)", text)
    return int(m.group(1)) / 1e6 if m else None


def host_cpu_seconds() -> float:
    """CPU seconds this machine has spent busy (all cores), from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def container_log_since(container: str, since: str) -> str:
    res = subprocess.run(
        ["docker", "logs", "--since", since, container],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return res.stdout + res.stderr


def run_classroom(
    browser: Any,
    url: str,
    sessions: int,
    *,
    steps: int = 40,
    first_index: int = 0,
    timeout_s: float = 600.0,
    container: str | None = None,
) -> dict[str, Any]:
    """``sessions`` browser sessions open a Live-attack link at once; see the module docstring.

    Args:
        browser: A Playwright Chromium browser.
        url: The server's root URL.
        sessions: How many sessions at once (≥ 1).
        steps: PGD steps per attack.
        first_index: Session ``i`` attacks test image ``first_index + i``.
        timeout_s: How long a session may wait for its result before it counts as never
            answered.
        container: The server's Docker container, for its job log and peak memory.

    Returns:
        The measurement as a JSON-ready dict.
    """
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    contexts = [
        browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(sessions)
    ]
    pages = [c.new_page() for c in contexts]
    opened: list[float] = []
    outcome: list[str | None] = [None] * sessions
    seconds: list[float | None] = [None] * sessions
    cpu0 = container_cpu_seconds(container) if container else None
    host0, wall0 = host_cpu_seconds(), time.monotonic()
    try:
        with PeakMemory(container) as peak:
            for i, p in enumerate(pages):
                opened.append(time.monotonic())
                p.goto(attack_link(url, first_index + i, steps), wait_until="commit")
            deadline = time.monotonic() + timeout_s
            while any(o is None for o in outcome) and time.monotonic() < deadline:
                for i, p in enumerate(pages):
                    if outcome[i] is not None:
                        continue
                    with contextlib.suppress(Exception):  # a page mid-navigation: ask again
                        if p.evaluate(FAILED_JS):
                            outcome[i], seconds[i] = "failed", time.monotonic() - opened[i]
                        elif p.evaluate(RESULT_JS) >= RESULT_BUTTONS:
                            outcome[i], seconds[i] = "done", time.monotonic() - opened[i]
                time.sleep(0.25)
    finally:
        for c in contexts:
            with contextlib.suppress(Exception):
                c.close()
    wall, host = time.monotonic() - wall0, host_cpu_seconds() - host0
    cpu1 = container_cpu_seconds(container) if container else None
    done = [s for s, o in zip(seconds, outcome, strict=True) if o == "done" and s is not None]
    result: dict[str, Any] = {
        "sessions": sessions,
        "steps": steps,
        "done": outcome.count("done"),
        "failed": outcome.count("failed"),
        "never_answered": outcome.count(None),
        "time_to_result_s": quantiles(done),
        "wall_s": round(wall, 1),
        "host_cpu_s": round(host, 1),
    }
    if container:
        jobs = job_lines(container_log_since(container, since))
        result["server"] = {
            "jobs": len(jobs),
            "outcomes": dict(Counter(j["outcome"] for j in jobs)),
            "waited_s": quantiles([j["waited"] for j in jobs]),
            "ran_s": quantiles([j["ran"] for j in jobs]),
            "ran_total_s": round(sum(j["ran"] for j in jobs), 1),
        }
        result["memory_peak_mb"] = round(peak.peak, 1)
        if cpu0 is not None and cpu1 is not None:
            # the server's CPU (jobs, page scripts, websockets); the rest is the browsers'
            result["server_cpu_s"] = round(cpu1 - cpu0, 1)
    return result


def markdown(results: Sequence[dict[str, Any]]) -> str:
    """The measurements as a Markdown table, one row per N."""
    rows = [
        "| sessions | done / failed / never | to result p50 / p90 / max (s) | jobs | "
        "job wait p50 / p90 / max (s) | job run p50 / p90 / max (s) | "
        "jobs ran, s / server CPU, s / machine CPU, s | peak memory |",
        "|---:|---|---|---:|---|---|---|---:|",
    ]
    for r in results:
        t, srv = r["time_to_result_s"], r.get("server", {})
        w, ran = srv.get("waited_s", {}), srv.get("ran_s", {})

        def trio(q: dict[str, Any]) -> str:
            cells = ("—" if q.get(k) is None else f"{q[k]:g}" for k in ("p50", "p90", "max"))
            return " / ".join(cells)

        mem = r.get("memory_peak_mb")
        cpu = f"{srv.get('ran_total_s', '—')} / {r.get('server_cpu_s', '—')} / {r['host_cpu_s']}"
        rows.append(
            f"| {r['sessions']} | {r['done']} / {r['failed']} / {r['never_answered']} | {trio(t)} "
            f"| {srv.get('jobs', '—')} | {trio(w) if w else '—'} | {trio(ran) if ran else '—'} "
            f"| {cpu} | {f'{mem:g} MB' if mem else '—'} |"
        )
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the server's root URL (127.0.0.1)")
    parser.add_argument("--sessions", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--container", help="the server's Docker container (job log, memory)")
    parser.add_argument("--out", help="write the measurements here as JSON")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for k, n in enumerate(args.sessions):
                r = run_classroom(
                    browser,
                    args.url,
                    n,
                    steps=args.steps,
                    timeout_s=args.timeout,
                    first_index=100 * k,
                    container=args.container,
                )
                print(json.dumps(r), flush=True)
                results.append(r)
        finally:
            browser.close()
    print(markdown(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if all(r["done"] == r["sessions"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
