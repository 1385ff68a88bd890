"""kwta.explorer.jobs: the bounded FIFO job queue and the out-of-memory retry."""

from __future__ import annotations

import logging
import re
import threading
import time

import pytest
import torch
from torch import nn

from kwta.analysis.landscape import loss_landscape
from kwta.data import CIFAR10Tensors
from kwta.explorer import jobs

JOIN_S = 30  # generous bound for every thread join (no test asserts wall time)


def _wait_until(cond: object, what: str) -> None:
    deadline = time.monotonic() + JOIN_S
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_bound_never_exceeded_and_all_complete() -> None:
    queue = jobs.JobQueue(2)
    lock = threading.Lock()
    inside = [0]
    seen_max = [0]
    done: list[int] = []

    def job(i: int) -> None:
        with queue.slot():
            with lock:
                inside[0] += 1
                seen_max[0] = max(seen_max[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1
                done.append(i)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert sorted(done) == list(range(12))
    assert seen_max[0] == 2 and queue.peak_running == 2
    assert queue.running == 0 and queue.waiting == 0


def test_fifo_order_and_positions() -> None:
    queue = jobs.JobQueue(1)
    queue.acquire()  # the running job
    order: list[int] = []
    positions: dict[int, list[int]] = {i: [] for i in range(3)}
    gates = {i: threading.Event() for i in range(3)}

    def waiter(i: int) -> None:
        with queue.slot(on_wait=positions[i].append):
            order.append(i)
            gates[i].wait(JOIN_S)

    threads = []
    for i in range(3):  # join the line one after the other
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        _wait_until(lambda i=i: queue.waiting == i + 1, f"waiter {i} in line")
    _wait_until(lambda: [p[:1] for p in positions.values()] == [[1], [2], [3]], "positions")
    queue.release()  # waiter 0 starts; the others move up
    _wait_until(lambda: order == [0] and positions[2][-1] == 2, "waiter 0 to start")
    gates[0].set()
    _wait_until(lambda: order == [0, 1] and positions[2][-1] == 1, "waiter 1 to start")
    gates[1].set()
    gates[2].set()
    for t in threads:
        t.join(JOIN_S)
    assert order == [0, 1, 2]
    assert positions == {0: [1], 1: [2, 1], 2: [3, 2, 1]}
    assert queue.peak_running == 1 and queue.running == 0 and queue.waiting == 0


def test_released_after_an_exception() -> None:
    queue = jobs.JobQueue(1)
    with pytest.raises(ZeroDivisionError), queue.slot():
        _ = 1 / 0
    assert queue.running == 0
    with queue:  # the slot is free again
        assert queue.running == 1
    assert queue.running == 0
    with pytest.raises(RuntimeError, match="without a held slot"):
        queue.release()


def test_a_failing_wait_callback_leaves_the_line() -> None:
    queue = jobs.JobQueue(1)
    queue.acquire()

    def boom(position: int) -> None:
        raise KeyError(position)

    with pytest.raises(KeyError):
        queue.acquire(on_wait=boom)
    assert queue.waiting == 0 and queue.running == 1
    queue.release()
    with queue.slot():
        assert queue.running == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_max_jobs(bad: object) -> None:
    with pytest.raises(ValueError, match="max_jobs"):
        jobs.JobQueue(bad)  # type: ignore[arg-type]


def test_default_queue_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_default", None)
    monkeypatch.setenv(jobs.ENV_MAX_JOBS, "3")
    assert jobs.default_queue().max_jobs == 3
    assert jobs.default_queue() is jobs.default_queue()
    monkeypatch.setattr(jobs, "_default", None)
    monkeypatch.delenv(jobs.ENV_MAX_JOBS)
    assert jobs.default_queue().max_jobs == (2 if torch.cuda.is_available() else 1)
    for bad in ("0", "two", "-4", "1.5"):
        monkeypatch.setattr(jobs, "_default", None)
        monkeypatch.setenv(jobs.ENV_MAX_JOBS, bad)
        with pytest.raises(ValueError, match="KWTA_MAX_JOBS must be an integer >= 1"):
            jobs.default_queue()


def test_retry_on_oom_halves_until_it_fits(
    relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    x, y = test_sample.tensors([3])
    tried: list[int] = []

    def landscape(batch: int) -> torch.Tensor:
        tried.append(batch)
        if batch > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return loss_landscape(relu_model, x, int(y[0]), grid=11, batch_size=batch).loss

    got = jobs.retry_on_oom(landscape, 500)
    assert tried == [500, 250, 125, 62]
    whole = loss_landscape(relu_model, x, int(y[0]), grid=11, batch_size=121).loss
    torch.testing.assert_close(got, whole)


def test_retry_on_oom_plain_runtime_error_and_other_errors() -> None:
    tried: list[int] = []

    def fn(batch: int) -> int:
        tried.append(batch)
        if batch > 3:
            raise RuntimeError("[enforce fail] DefaultCPUAllocator: out of memory")
        return batch * 10

    assert jobs.retry_on_oom(fn, 16) == 20 and tried == [16, 8, 4, 2]

    def other(batch: int) -> int:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        jobs.retry_on_oom(other, 8)


def test_retry_on_oom_gives_up_at_min_batch() -> None:
    tried: list[int] = []

    def never(batch: int) -> int:
        tried.append(batch)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(jobs.JobMemoryError, match="even at batch size 8") as info:
        jobs.retry_on_oom(never, 64, min_batch=8)
    assert tried == [64, 32, 16, 8]
    assert isinstance(info.value, MemoryError) and isinstance(info.value, jobs.JobError)
    assert "try again" in str(info.value)
    with pytest.raises(ValueError, match="min_batch"):
        jobs.retry_on_oom(never, 4, min_batch=8)
    with pytest.raises(ValueError, match="batch_size"):
        jobs.retry_on_oom(never, 0)


def test_a_cancelled_waiting_job_leaves_the_line() -> None:
    """A queued job whose session is gone leaves the queue: the next job runs promptly."""
    queue = jobs.JobQueue(1)
    gone = threading.Event()
    queue.acquire()  # someone else's long job holds the only slot
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            queue.acquire(cancelled=gone.is_set)
        except BaseException as err:
            errors.append(err)

    t = threading.Thread(target=waiter)
    t.start()
    deadline = time.monotonic() + 5
    while queue.waiting != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert queue.waiting == 1
    gone.set()
    t.join(5)
    assert not t.is_alive() and isinstance(errors[0], jobs.JobCancelled)
    assert queue.waiting == 0 and queue.running == 1
    queue.release()
    with queue.slot():  # a fresh light job runs at once
        assert queue.running == 1


def test_a_cancelled_running_job_stops_at_its_next_step(
    relu_model: nn.Module, test_sample: CIFAR10Tensors
) -> None:
    """A real attack whose progress callback raises JobCancelled stops at once."""
    from kwta.attacks.sign_gradient import pgd_linf

    x, y = test_sample.tensors(slice(0, 8))
    sink = jobs.ProgressSink()
    steps: list[int] = []

    def work() -> object:
        def on_step(done: int, total: int) -> None:
            steps.append(done)
            if done == 3:
                sink.cancel()  # the page went away after three steps
            sink(done, total)

        return pgd_linf(relu_model, x, y, eps=0.031, alpha=0.003, steps=40, callback=on_step)

    with pytest.raises(jobs.JobCancelled):
        jobs.queued_job(work, sink)
    assert max(steps) == 3 and jobs.default_queue().running == 0


def test_progress_text_shows_the_queue() -> None:
    assert jobs.progress_text("PGD", 3, 40, None, 2) == "PGD — 3/40"
    assert jobs.progress_text("PGD", 0, 0, 3, 2) == (
        "PGD — Queued: 3 job(s) ahead of you — the server runs at most 2 at once"
    )
    sink = jobs.ProgressSink()
    queue = jobs.JobQueue(1)
    queue.acquire()
    waiter = threading.Thread(target=lambda: jobs.queued_job(lambda: None, sink), daemon=True)
    # queued_job uses the default queue: point it at this one for the test
    old, jobs._default = jobs._default, queue
    try:
        waiter.start()
        for _ in range(2000):
            if sink.queue_position() == 1:
                break
            threading.Event().wait(0.005)
        assert sink.queue_position() == 1
        queue.release()
        waiter.join(30)
        assert not waiter.is_alive() and sink.queue_position() is None
    finally:
        jobs._default = old
    assert queue.running == 0 and queue.peak_running == 1


def test_a_job_past_its_time_limit_stops_at_its_next_step(
    relu_model: nn.Module, test_sample: CIFAR10Tensors, caplog: pytest.LogCaptureFixture
) -> None:
    """A real attack held past ``max_seconds`` stops at its next progress report; the clock
    starts when the job leaves the queue, and a sink without a limit never stops a job.
    Every job leaves one log line with its outcome, its wait and its run time."""
    from kwta.attacks.sign_gradient import pgd_linf

    x, y = test_sample.tensors(slice(0, 4))
    sink = jobs.ProgressSink(max_seconds=0.3)
    steps: list[int] = []

    def on_step(done: int, total: int) -> None:
        steps.append(done)
        time.sleep(0.05)
        sink(done, total)

    def work() -> object:
        return pgd_linf(relu_model, x, y, eps=0.031, alpha=0.003, steps=40, callback=on_step)

    sink(0, 40)  # not started yet: no limit counts
    caplog.set_level(logging.INFO, logger="kwta.explorer.jobs")
    with pytest.raises(jobs.JobTimeout, match=r"stopped after 0.3 s.*KWTA_MAX_JOB_SECONDS"):
        jobs.queued_job(work, sink)
    assert 3 <= max(steps) < 40 and jobs.default_queue().running == 0
    assert jobs.queued_job(lambda: 7) == 7
    lines = [re.search(jobs.JOB_LOG_PATTERN, r.getMessage()) for r in caplog.records]
    found = [(m["outcome"], float(m["waited"]), float(m["ran"])) for m in lines if m]
    assert [f[0] for f in found] == ["timeout", "done"]
    assert found[0][2] >= 0.3 and found[0][1] >= 0.0  # it ran past its limit, then stopped
    free = jobs.ProgressSink()
    free.queued(None)
    time.sleep(0.05)
    free(1, 2)  # no limit: never raises


def test_default_max_job_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(jobs.ENV_MAX_JOB_SECONDS, raising=False)
    want = jobs.DEFAULT_MAX_JOB_SECONDS["cuda" if torch.cuda.is_available() else "cpu"]
    assert jobs.default_max_job_seconds() == want
    monkeypatch.setenv(jobs.ENV_MAX_JOB_SECONDS, "30")
    assert jobs.default_max_job_seconds() == 30.0
    monkeypatch.setenv(jobs.ENV_MAX_JOB_SECONDS, "0")
    assert jobs.default_max_job_seconds() is None  # no limit
    for bad in ("-1", "abc", "inf", "nan"):
        monkeypatch.setenv(jobs.ENV_MAX_JOB_SECONDS, bad)
        with pytest.raises(ValueError, match="KWTA_MAX_JOB_SECONDS"):
            jobs.default_max_job_seconds()
