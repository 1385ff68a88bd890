"""Optional compiled k-WTA kernel for the CPU (``kwta_cpu.cpp``), built on first use.

The kernel fuses what the PyTorch path does in several passes — threshold
selection, winner mask, output, tie rule — into a radix select and one output
pass per sample, in NCHW or channels-last memory order (see the source for
the algorithm). It is compiled with :func:`torch.utils.cpp_extension.load` the
first time a k-WTA layer runs on the CPU (about a minute; cached by PyTorch in
``~/.cache/torch_extensions`` or ``$TORCH_EXTENSIONS_DIR``) and is never
required: without a C++ compiler or ninja, or with ``KWTA_NATIVE=0``, every
call takes the pure-PyTorch path, which gives bit-identical results and is
tested against this kernel.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from types import ModuleType

__all__ = ["SOURCE", "cpu_kernel", "native_enabled"]

log = logging.getLogger(__name__)

#: The kernel's C++ source.
SOURCE = Path(__file__).with_name("kwta_cpu.cpp")

_lock = threading.Lock()
_state: dict[str, ModuleType | None] = {}


def native_enabled() -> bool:
    """``False`` when ``$KWTA_NATIVE`` is ``0``/``false``/``off`` (pure PyTorch only)."""
    return os.environ.get("KWTA_NATIVE", "1").strip().lower() not in ("0", "false", "off", "no")


def cpu_kernel() -> ModuleType | None:
    """The compiled kernel module (``forward``, ``backward``), or ``None`` if unavailable.

    Built once per process (thread-safe); a failed build is logged once and
    not retried.
    """
    if not native_enabled():
        return None
    if "cpu" in _state:
        return _state["cpu"]
    with _lock:
        if "cpu" not in _state:
            _state["cpu"] = _build()
    return _state["cpu"]


def _isa_flags() -> list[str]:
    """``-mavx2 -mfma`` where PyTorch itself runs its AVX2 kernels, else nothing (SSE2).

    The flags are part of the build's name, so a cache shared by machines of
    different kinds never hands an AVX2 build to a CPU without AVX2.
    """
    import torch

    capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    return ["-mavx2", "-mfma", "-mf16c"] if capability in ("AVX2", "AVX512") else []


def _build() -> ModuleType | None:
    try:
        from torch.utils.cpp_extension import load

        flags = ["-O3", "-fopenmp", *_isa_flags()]
        digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(flags).encode()).hexdigest()[:12]
        module = load(
            name=f"kwta_cpu_{digest}",
            sources=[str(SOURCE)],
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as err:  # no compiler, no ninja, headers missing: the PyTorch path serves
        log.warning("compiled k-WTA kernel unavailable (%s); using the PyTorch path", err)
        return None
    log.info("compiled k-WTA CPU kernel loaded")
    return module
