"""Run a Python script or module so that SIGINT raises ``KeyboardInterrupt`` — even when it
was started with SIGINT ignored, as a shell's background job is.

``scripts/device_gpu.sh`` stops a step at its deadline with SIGINT so that pytest prints its
summary and the scripts keep what they measured; a process that inherited an ignored SIGINT
would only die at the SIGKILL after it, with nothing written. Usage::

    python scripts/sigint.py -m pytest ARGS...
    python scripts/sigint.py SCRIPT.py ARGS...
"""

from __future__ import annotations

import runpy
import signal
import sys
from pathlib import Path


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    if sys.argv[1] == "-m":
        module = sys.argv[2]
        sys.argv = [module, *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        script = sys.argv[1]
        sys.argv = sys.argv[1:]
        sys.path.insert(0, str(Path(script).resolve().parent))
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
