"""Heavy jobs on a shared device: a bounded FIFO queue and out-of-memory retries.

One GPU (or a few CPU cores) serves every session of the explorer. Heavy jobs
(attacks, loss landscapes, toy fits) take a slot of a :class:`JobQueue` first, so
that however many sessions are open, at most ``max_jobs`` of them compute at
once; the others wait in first-come, first-served order and are told their
place in the line.

- :class:`JobQueue`: ``with queue.slot(on_wait=...)`` or ``acquire`` / ``release``;
  counters ``running``, ``waiting``, ``peak_running``;
- :func:`default_queue`: the process-wide queue, sized by ``$KWTA_MAX_JOBS``
  (default 1 on a CPU, 2 with CUDA);
- :func:`retry_on_oom`: call ``fn(batch_size)``; on a (CUDA) out-of-memory error
  free the cache and retry at half the batch, down to ``min_batch``, then raise
  :class:`JobMemoryError` with a message meant for the user;
- :class:`ProgressSink` (a job's progress, read by the page; where a job is cancelled
  or stopped after ``$KWTA_MAX_JOB_SECONDS``, :func:`default_max_job_seconds`),
  :func:`queued_job` (a function run holding a slot) and :func:`progress_text`.
  No Streamlit here: the app's progress bar reads a sink from the page thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

__all__ = [
    "DEFAULT_MAX_JOB_SECONDS",
    "ENV_MAX_JOBS",
    "ENV_MAX_JOB_SECONDS",
    "JOB_LOG_FORMAT",
    "JOB_LOG_PATTERN",
    "POLL_S",
    "JobCancelled",
    "JobError",
    "JobMemoryError",
    "JobQueue",
    "JobTimeout",
    "ProgressSink",
    "T",
    "default_max_job_seconds",
    "default_max_jobs",
    "default_queue",
    "is_out_of_memory",
    "progress_text",
    "queued_job",
    "retry_on_oom",
]

log = logging.getLogger(__name__)


T = TypeVar("T")


#: How often a waiting job checks whether it was cancelled (seconds).
POLL_S = 0.25


#: Environment variable holding the number of jobs the default queue runs at once.
ENV_MAX_JOBS = "KWTA_MAX_JOBS"

#: Environment variable holding the longest one job may run once started, in seconds
#: (``0``: no limit).
ENV_MAX_JOB_SECONDS = "KWTA_MAX_JOB_SECONDS"

#: Its default per device. Every page's main action at its defaults takes at most 16 s on
#: one CPU thread (docs/speed.md: ``benchmarks/bench_pages.py``); two minutes leave room for
#: heavier settings while no single student holds a CPU box's only job slot for long.
DEFAULT_MAX_JOB_SECONDS = {"cpu": 120.0, "cuda": 60.0}


class JobError(RuntimeError):
    """A heavy job could not run; the message is meant for the user."""


class JobCancelled(JobError):
    """The session that asked for the job is gone (closed, reloaded, moved on): stop it."""


class JobTimeout(JobError):
    """A job ran past the server's limit per job (``$KWTA_MAX_JOB_SECONDS``) and was stopped."""


class JobMemoryError(JobError, MemoryError):
    """The device ran out of memory even at the smallest batch."""


class _Ticket:
    """One waiting job (identity only)."""

    __slots__ = ()


class JobQueue:
    """A bounded, fair (FIFO) gate: at most ``max_jobs`` holders at once.

    A job that finds a free slot and nobody waiting starts at once; otherwise it
    joins the end of the line, and a freed slot always goes to the head of the
    line (no overtaking). Thread-safe.

    Args:
        max_jobs: How many jobs may run at once (an int ≥ 1).

    Raises:
        ValueError: ``max_jobs`` is not an int ≥ 1.
    """

    def __init__(self, max_jobs: int) -> None:
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise ValueError(f"max_jobs must be an int >= 1, got {max_jobs!r}")
        self.max_jobs = max_jobs
        self._cond = threading.Condition()
        self._running = 0
        self._peak = 0
        self._line: deque[_Ticket] = deque()

    @property
    def running(self) -> int:
        """Jobs holding a slot now."""
        with self._cond:
            return self._running

    @property
    def waiting(self) -> int:
        """Jobs waiting in line now."""
        with self._cond:
            return len(self._line)

    @property
    def peak_running(self) -> int:
        """The most jobs that ever held a slot at the same time."""
        with self._cond:
            return self._peak

    def state(self) -> dict[str, int]:
        """``running``, ``waiting``, ``max_jobs`` and ``peak_running``, read together."""
        with self._cond:
            return {
                "running": self._running,
                "waiting": len(self._line),
                "max_jobs": self.max_jobs,
                "peak_running": self._peak,
            }

    def _start(self) -> None:
        self._running += 1
        if self._running > self._peak:
            self._peak = self._running
            log.info("jobs: peak running %d (at most %d at once)", self._peak, self.max_jobs)

    def acquire(
        self,
        on_wait: Callable[[int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        """Take a slot, waiting in line if none is free.

        Args:
            on_wait: Called (without the queue's lock held) whenever this job's
                place changes while it waits, with ``position``: the number of jobs
                ahead of it — those running plus those waiting in front (≥ 1). Not
                called when a slot is free at once. If it raises, the job leaves
                the line and the error propagates.
            cancelled: Polled (every :data:`POLL_S` seconds) while the job waits;
                when it returns ``True`` the job leaves the line.

        Raises:
            JobCancelled: ``cancelled()`` became true while waiting.
        """
        with self._cond:
            if self._running < self.max_jobs and not self._line:
                self._start()
                return
            ticket = _Ticket()
            self._line.append(ticket)
            reported: int | None = None
            try:
                while True:
                    if self._line[0] is ticket and self._running < self.max_jobs:
                        self._line.popleft()
                        self._start()
                        self._cond.notify_all()  # the next in line re-reports its place
                        return
                    position = self._running + self._line.index(ticket)
                    if on_wait is not None and position != reported:
                        reported = position
                        self._cond.release()
                        try:
                            on_wait(position)
                        finally:
                            self._cond.acquire()
                        continue  # the state may have changed meanwhile
                    if cancelled is not None and cancelled():
                        raise JobCancelled("the job was cancelled while it waited")
                    self._cond.wait(POLL_S if cancelled is not None else None)
            except BaseException:
                if ticket in self._line:
                    self._line.remove(ticket)
                    self._cond.notify_all()
                raise

    def release(self) -> None:
        """Give a slot back (wakes the head of the line).

        Raises:
            RuntimeError: No slot is held.
        """
        with self._cond:
            if self._running < 1:
                raise RuntimeError("release() without a held slot")
            self._running -= 1
            self._cond.notify_all()

    @contextmanager
    def slot(
        self,
        on_wait: Callable[[int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> Iterator[None]:
        """``with queue.slot(on_wait=...):`` holds a slot for the block, released on any exit.

        Args:
            on_wait: See :meth:`acquire`.
            cancelled: See :meth:`acquire`.
        """
        self.acquire(on_wait, cancelled)
        try:
            yield
        finally:
            self.release()

    def __enter__(self) -> JobQueue:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f"JobQueue(max_jobs={self.max_jobs}, running={self.running}, "
            f"waiting={self.waiting}, peak_running={self.peak_running})"
        )


def default_max_jobs() -> int:
    """``$KWTA_MAX_JOBS`` if set, else 2 with CUDA and 1 on a CPU.

    Raises:
        ValueError: ``$KWTA_MAX_JOBS`` is not an integer ≥ 1.
    """
    raw = os.environ.get(ENV_MAX_JOBS, "").strip()
    if not raw:
        return 2 if torch.cuda.is_available() else 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV_MAX_JOBS} must be an integer >= 1, got {raw!r}")
    return value


def default_max_job_seconds() -> float | None:
    """``$KWTA_MAX_JOB_SECONDS`` if set (``0``: no limit), else :data:`DEFAULT_MAX_JOB_SECONDS`
    for this machine (CUDA when present).

    Raises:
        ValueError: ``$KWTA_MAX_JOB_SECONDS`` is not a number ≥ 0.
    """
    raw = os.environ.get(ENV_MAX_JOB_SECONDS, "").strip()
    if not raw:
        return DEFAULT_MAX_JOB_SECONDS["cuda" if torch.cuda.is_available() else "cpu"]
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{ENV_MAX_JOB_SECONDS} must be a number of seconds >= 0, got {raw!r}")
    return value or None


_default: JobQueue | None = None


_default_lock = threading.Lock()


def default_queue() -> JobQueue:
    """The process-wide queue every heavy job of the app goes through (created on first use).

    Raises:
        ValueError: ``$KWTA_MAX_JOBS`` is not an integer ≥ 1.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = JobQueue(default_max_jobs())
            log.info("jobs: at most %d at once", _default.max_jobs)
        return _default


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is a device out-of-memory error (CUDA's, or a RuntimeError saying so)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def _free_device_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def retry_on_oom(fn: Callable[[int], T], batch_size: int, *, min_batch: int = 1) -> T:
    """``fn(batch_size)``, retried at half the batch after each out-of-memory error.

    Between tries the CUDA cache is emptied (when CUDA is available). Other
    errors propagate unchanged.

    Args:
        fn: The job, taking the batch size to use.
        batch_size: The first batch size (≥ 1).
        min_batch: The smallest batch size to try (1 to ``batch_size``).

    Returns:
        What ``fn`` returned.

    Raises:
        ValueError: Bad ``batch_size`` or ``min_batch``.
        JobMemoryError: Out of memory even at ``min_batch``.
    """
    for name, v in (("batch_size", batch_size), ("min_batch", min_batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if min_batch > batch_size:
        raise ValueError(f"min_batch ({min_batch}) must not exceed batch_size ({batch_size})")
    batch = batch_size
    while True:
        failed: str | None = None
        try:
            return fn(batch)
        except Exception as err:
            if not is_out_of_memory(err):
                raise
            failed = str(err).splitlines()[0] if str(err) else type(err).__name__
            if batch <= min_batch:
                raise JobMemoryError(
                    f"The device ran out of memory even at batch size {batch} "
                    f"(first tried {batch_size}). The server may be busy with other jobs: "
                    "try again in a moment, or ask for less (a smaller grid, fewer models)."
                ) from err
        # Outside the handler: the failed try's frames (and their tensors) are gone.
        _free_device_memory()
        smaller = max(min_batch, batch // 2)
        log.warning("jobs: out of memory at batch %d (%s); retrying at %d", batch, failed, smaller)
        batch = smaller


class ProgressSink:
    """Thread-safe progress (``done``, ``total``) and an optional payload from a worker.

    A page's worker reports here and the page thread reads it. The sink is also where a
    job stops: at its next report once the page has gone (:meth:`cancel`), or once it has
    run ``max_seconds`` since it left the queue (:class:`JobTimeout`).

    Args:
        max_seconds: The longest the job may run once started (``None``: no limit).
    """

    def __init__(self, max_seconds: float | None = None) -> None:
        self.max_seconds = max_seconds
        self._started: float | None = None
        self._lock = threading.Lock()
        self._version = 0
        self._done = 0
        self._total = 0
        self._payload: Any = None
        self._ahead: int | None = None
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """The page that waits for this job has gone: stop at the next progress report."""
        self._cancelled.set()

    def is_cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __call__(self, done: int, total: int, payload: Any = None) -> None:
        """Report progress; raise :class:`JobCancelled` once the page has gone away, or
        :class:`JobTimeout` once the job has run past ``max_seconds``, which stops the
        library's loop at its next step."""
        if self._cancelled.is_set():
            raise JobCancelled("the session that started this job is gone")
        started, limit = self._started, self.max_seconds
        if limit is not None and started is not None and time.monotonic() - started > limit:
            raise JobTimeout(
                f"stopped after {limit:g} s, the longest one job may run on this shared "
                f"server (${ENV_MAX_JOB_SECONDS}); choose lighter settings and run again"
            )
        with self._lock:
            self._done, self._total = int(done), int(total)
            if payload is not None:
                self._payload = payload
            self._version += 1

    def queued(self, ahead: int | None) -> None:
        """The job waits with ``ahead`` jobs before it in the queue; ``None``: it has started."""
        with self._lock:
            if ahead is None and self._started is None:
                self._started = time.monotonic()  # the time limit counts from here
            if ahead != self._ahead:
                self._ahead = ahead
                self._version += 1

    def queue_position(self) -> int | None:
        """How many jobs are ahead of this one in the queue; ``None`` when not waiting."""
        with self._lock:
            return self._ahead

    def snapshot(self) -> tuple[int, int, int, Any]:
        """``(version, done, total, payload)``; the version grows with every update."""
        with self._lock:
            return self._version, self._done, self._total, self._payload


#: The server log's line for every job that went through :func:`queued_job` (``outcome``:
#: done, timeout, cancelled or error; seconds waited in the queue, seconds run). The
#: classroom measurement (``scripts/classroom.py``) reads it to split what the server spent
#: from what the browsers cost.
JOB_LOG_FORMAT = "jobs: job %s: waited %.2f s, ran %.2f s"

#: Parses one :data:`JOB_LOG_FORMAT` line: groups ``outcome``, ``waited``, ``ran``.
JOB_LOG_PATTERN = r"jobs: job (?P<outcome>\w+): waited (?P<waited>[\d.]+) s, ran (?P<ran>[\d.]+) s"


def queued_job(fn: Callable[[], T], progress: ProgressSink | None = None) -> T:
    """``fn()`` holding a slot of the process-wide job queue (:func:`default_queue`).

    Call it inside an ``st.cache_data`` function, around the heavy library call:
    a cache hit then returns at once, and only real computations queue. While
    the job waits, ``progress`` learns its place (shown by :func:`run_with_progress`).

    Raises:
        ValueError: ``$KWTA_MAX_JOBS`` is not an integer ≥ 1.
        Whatever ``fn`` raised (the slot is released), e.g. :class:`JobCancelled` or
        :class:`JobTimeout` from ``progress``.

    Every job, however it ends, leaves one INFO line in the log (:data:`JOB_LOG_FORMAT`).
    """
    queue = default_queue()
    asked = time.monotonic()
    started: float | None = None
    outcome = "error"
    try:
        with queue.slot(
            on_wait=progress.queued if progress is not None else None,
            cancelled=progress.is_cancelled if progress is not None else None,
        ):
            started = time.monotonic()
            if progress is not None:
                progress.queued(None)
            value = fn()
            outcome = "done"
            return value
    except JobTimeout:
        outcome = "timeout"
        raise
    except JobCancelled:
        outcome = "cancelled"
        raise
    finally:
        end = time.monotonic()
        waited = (started if started is not None else end) - asked
        ran = end - started if started is not None else 0.0
        log.info(JOB_LOG_FORMAT, outcome, waited, ran)


def progress_text(label: str, done: int, total: int, ahead: int | None, max_jobs: int) -> str:
    """The progress bar's text: the label with ``done/total``, or the job's place in the queue."""
    if ahead is not None:
        return (
            f"{label} — Queued: {ahead} job(s) ahead of you — the server runs at most "
            f"{max_jobs} at once"
        )
    return f"{label} — {done}/{total}" if total else label
