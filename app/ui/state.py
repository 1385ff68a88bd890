"""URL state: every selection of a page lives in ``st.query_params``, so a link reproduces
the exact view, and the session keeps the last value of a page the user left.

- :func:`init_state` gives a widget its first value (link, last value, default) before it
  is drawn and binds its key to the URL; :func:`sync_url` writes the bound keys back into
  the URL (:func:`start_page` forgets the previous run's);
- :func:`show_notices` says which link values were ignored or clamped;
- :func:`capped` limits an extreme value with a visible message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from kwta.explorer.actions import get_action
from kwta.explorer.links import literal, shown_value, url_value
from kwta.explorer.links import parse_link_value as _parse

#: Prefix of the session's copies of widget values (see :func:`sync_url`).
_KEPT = "_kept_"
#: The keys :func:`init_state` bound to the URL during this script run, in order.
_URL_KEYS = "_ui_url_keys"


def start_page() -> None:
    """Forget the previous run's URL keys (the entry script calls it before the page runs)."""
    st.session_state[_URL_KEYS] = []


def init_state(
    key: str,
    default: Any,
    *,
    choices: Sequence[Any] | None = None,
    lo: float | None = None,
    hi: float | None = None,
    item: type | None = None,
    max_items: int | None = None,
    url: bool = True,
) -> None:
    """Give widget ``key`` its first value: from the URL if valid, else the value it had when
    the user last left the page, else ``default``.

    Call before creating the widget (which then takes no ``value``/``index``).
    Values outside ``choices`` or ``[lo, hi]`` are replaced (clamped) so the widget
    accepts them; an unusable URL value falls back to the default with a notice.
    ``item`` is the type of list items (multiselects), ``max_items`` their most.
    Unless ``url`` is false, the key is bound to the URL: :func:`sync_url` writes it back.
    """
    if url:
        bound = st.session_state.setdefault(_URL_KEYS, [])
        if key not in bound:
            bound.append(key)
    state = st.session_state
    from_link = False
    if key in state:
        value = state[key]
    else:
        # the session's last value (kept by sync_url): Streamlit drops a widget's state when
        # a run does not draw it, e.g. while the user is on another page
        value = state.get(_KEPT + key, default)
        raw = st.query_params.get_all(key) if key in st.query_params else None
        if raw:
            try:
                value = _parse(raw, default, item)
                from_link = True
            except ValueError:
                _notice(f"Ignored the link's value {literal(raw[-1])} for `{key}`.")
    asked = value
    if choices is not None:
        if isinstance(value, list):
            value = list(dict.fromkeys(v for v in value if v in choices))[:max_items]
            if not value and asked and isinstance(default, list):
                value = [v for v in default if v in choices]  # none known: the default selection
        elif value not in choices:
            value = default if default in choices else (choices[0] if choices else None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and value < lo:
            value = type(value)(lo)
        if hi is not None and value > hi:
            value = type(value)(hi)
    if from_link and value != asked:
        what = "not among the choices" if choices is not None else "outside the allowed range"
        shown = value if not isinstance(value, list) else ", ".join(map(str, value)) or "none"
        _notice(
            f"The link's value {literal(shown_value(asked))} for `{key}` is {what}; "
            f"using {literal(shown)} instead."
        )
    state[key] = value


def sync_url(keys: Sequence[str] | None = None, **extra: Any) -> None:
    """Write the current values of ``keys`` (default: every key :func:`init_state` bound to
    the URL in this run) and ``extra`` to the URL, replacing what was there, and keep a copy
    that :func:`init_state` restores when the user comes back to the page."""
    if keys is None:
        keys = list(st.session_state.get(_URL_KEYS, []))
    params: dict[str, str] = {}
    for k in keys:
        if k in st.session_state and st.session_state[k] is not None:
            params[k] = url_value(st.session_state[k])
            st.session_state[_KEPT + k] = st.session_state[k]
    params.update({k: url_value(v) for k, v in extra.items() if v is not None})
    current = {k: st.query_params.get(k) for k in st.query_params}
    if current != params:
        st.query_params.from_dict(params)


def _notice(msg: str) -> None:
    st.session_state.setdefault("_ui_notices", []).append(msg)


def show_notices() -> None:
    """Show (once) the notices collected while reading the URL."""
    for msg in st.session_state.pop("_ui_notices", []):
        st.warning(msg, icon=":material/link_off:")


def capped(value: int, limit: int, what: str, *, why: str = "to keep the app responsive") -> int:
    """``min(value, limit)``, with a visible warning when the limit applies."""
    if value > limit:
        st.warning(f"{what} capped at {limit} (asked for {value}) {why}.", icon=":material/speed:")
        return limit
    return value


#: How the attack pages name each choice of the steps' precision.
PRECISION_LABELS: dict[str, str] = {
    "auto": "auto",
    "fp32": "fp32",
    "bf16": "bf16 steps",
    "fp16": "fp16 steps (CUDA)",
}


def precision_picker(prefix: str, action: str) -> str:
    """The sidebar's choice of an attack's steps' precision, bound to the URL as
    ``<prefix>_prec``; default and choices are the page action's ``precision`` setting."""
    setting = next(s for s in get_action(action).settings if s.name == "precision")
    key = f"{prefix}_prec"
    init_state(key, setting.default, choices=list(setting.choices))
    st.sidebar.radio(
        "Steps' precision",
        list(setting.choices),
        key=key,
        horizontal=True,
        format_func=PRECISION_LABELS.__getitem__,
        help=(
            "What the attack's gradient steps run in. 'auto' is fp32 until bf16 steps are "
            "measured to be as strong; every number shown (logits, success, steps) is fp32."
        ),
    )
    return str(st.session_state[key])
