"""Text shown on a page: user-supplied values as inert code, percentages (both from kwta)."""

from __future__ import annotations

from kwta.explorer.links import literal
from kwta.zoo.compare import percent as pct

__all__ = ["literal", "pct"]
