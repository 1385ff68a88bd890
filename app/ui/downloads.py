"""Download buttons for a page's results."""

from __future__ import annotations

from typing import Any

_MIME = {".csv": "text/csv", ".json": "application/json", ".png": "image/png"}


def download(container: Any, label: str, data: str | bytes, filename: str, *, key: str) -> None:
    """A download button whose MIME type follows the file name; it does not rerun the page."""
    container.download_button(
        label,
        data,
        filename,
        _MIME[filename[filename.rfind(".") :]],
        key=key,
        on_click="ignore",
        icon=":material/download:",
    )
