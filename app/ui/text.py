"""Text shown on a page: user-supplied values as inert code, percentages."""

from __future__ import annotations

from kwta.zoo.compare import percent as pct

__all__ = ["literal", "pct"]


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
