"""``python -m kwta train …`` / ``python -m kwta evaluate …``: see :mod:`kwta.cli`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
