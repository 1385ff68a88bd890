"""The one way a cached wrapper runs a page action: on the shared queue, with progress."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kwta.explorer import jobs
from kwta.explorer.actions import ActionInputs, get_action


def queued_action(
    key: str,
    inputs: ActionInputs,
    settings: Mapping[str, Any],
    progress: jobs.ProgressSink | None,
    *,
    callback: Callable[..., Any] | None = None,
    **extra: Any,
) -> Any:
    """``get_action(key).run(inputs, settings)`` as a queued job (:func:`jobs.queued_job`);
    ``callback`` is the action's progress callback (default: ``progress`` itself)."""
    action = get_action(key)
    live = callback if callback is not None else progress
    return jobs.queued_job(lambda: action.run(inputs, settings, callback=live, **extra), progress)
