"""The shared server's caps on a single job's settings (the pages clamp to them, visibly).

The time a job may run is :func:`kwta.explorer.jobs.default_max_job_seconds`; these bound
what one click may ask for.
"""

from __future__ import annotations

import os

__all__ = ["ENV_MAX_QUERIES", "MAX_FIT_STEPS", "MAX_GRID", "MAX_STEPS", "max_queries"]

#: Most PGD steps one run may take (keeps a CPU session responsive).
MAX_STEPS = 200

#: Largest loss-landscape grid side (101² = 10 201 forward passes per model).
MAX_GRID = 101

#: Most Adam steps of one toy fit (Fig. 1).
MAX_FIT_STEPS = 10_000

#: Environment variable holding the most model evaluations one adaptive attack may spend.
ENV_MAX_QUERIES = "KWTA_MAX_QUERIES"


def max_queries(on_gpu: bool) -> int:
    """``$KWTA_MAX_QUERIES`` if it is a positive integer, else 200 000 on a GPU, 20 000 on a CPU:
    the most model evaluations one adaptive attack may spend on an image."""
    raw = os.environ.get(ENV_MAX_QUERIES, "")
    try:
        value = int(raw) if raw.strip() else 0
    except ValueError:
        value = 0
    return value if value > 0 else (200_000 if on_gpu else 20_000)
