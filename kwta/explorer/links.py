"""The explorer's links and the text it echoes: a page's settings live in its URL, so a link
reproduces a view, and whatever a link or an upload carries is shown as inert text.

- :func:`parse_link_value` reads a query-parameter string as the type of a setting's
  default (``ValueError`` if it does not fit); :func:`url_value` writes a value back;
- :func:`shown_value` quotes a link's value in a notice (huge numbers shortened);
- :func:`literal` turns user-supplied text into an inline code span: never Markdown or
  HTML, one line, short;
- :func:`display_dir` names the model folder without this server's absolute path.

No Streamlit here: ``app/ui/state.py`` binds these to the widgets.
"""

from __future__ import annotations

import math
import os
from typing import Any

__all__ = ["display_dir", "literal", "parse_link_value", "shown_value", "url_value"]


def parse_link_value(raw: Any, default: Any, item: type | None = None) -> Any:
    """A query-parameter string as the type of ``default``; ``ValueError`` if it does not fit.

    Lists are comma-separated; their items are converted by ``item`` (default: the type
    of the default's first item, else ``str``).
    """
    if isinstance(raw, list):
        raw = raw[-1] if raw else ""
    text = str(raw)
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            v = float(text)
            if not math.isfinite(v):
                raise
            return int(v)
    if isinstance(default, float):
        v = float(text)
        if not math.isfinite(v):
            raise ValueError(text)
        return v
    if isinstance(default, (list, tuple)):
        conv = item or (type(default[0]) if default else str)
        return [conv(t) for t in text.split(",") if t]
    return text


def url_value(value: Any) -> str:
    """A widget value as it is written into the URL (and read back by the app's ``init_state``)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def shown_value(value: Any) -> str:
    """A value from a link as a notice quotes it: :func:`url_value`, with a whole number of
    more than twelve digits (``1e308`` read as an integer) in scientific notation."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**12:
        digits = str(abs(value))
        return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"
    return url_value(value)


def literal(value: object, limit: int = 60) -> str:
    """User-supplied text as an inline code span: never Markdown or HTML, one line, short.

    Backticks (which could close the span) become ``'``, line breaks and other
    control characters become spaces, and anything past ``limit`` characters is
    cut with an ellipsis, so a link or a file name can neither inject a link, an
    image or markup into a message nor flood it.
    """
    text = "".join(ch if ch.isprintable() else " " for ch in str(value)).replace("`", "'")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`" if text.strip() else "`(empty)`"


def display_dir() -> str:
    """The model folder as a visitor may see it: never this server's absolute path."""
    return "$KWTA_PRETRAINED" if os.environ.get("KWTA_PRETRAINED") else "pretrained/"
