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
  :class:`JobMemoryError` with a message meant for the user.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

__all__ = [
    "ENV_MAX_JOBS",
    "POLL_S",
    "JobCancelled",
    "JobError",
    "JobMemoryError",
    "JobQueue",
    "T",
    "default_max_jobs",
    "default_queue",
    "is_out_of_memory",
    "retry_on_oom",
]

log = logging.getLogger(__name__)


T = TypeVar("T")


#: How often a waiting job checks whether it was cancelled (seconds).
POLL_S = 0.25


#: Environment variable holding the number of jobs the default queue runs at once.
ENV_MAX_JOBS = "KWTA_MAX_JOBS"


class JobError(RuntimeError):
    """A heavy job could not run; the message is meant for the user."""


class JobCancelled(JobError):
    """The session that asked for the job is gone (closed, reloaded, moved on): stop it."""


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
