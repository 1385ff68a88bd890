"""What only the interactive explorer (``app/``) needs: live runs with traces,
demos, exports, the job queue and user images. The pages render; this computes.

- :mod:`~kwta.explorer.runs`: PGD on one image with its trace (Fig. 3a/b), exports;
- :mod:`~kwta.explorer.adaptive`: adaptive attacks on one image, robustness rows;
- :mod:`~kwta.explorer.demo`: the Fig. 2 activation demo;
- :mod:`~kwta.explorer.patterns`: winner maps and pattern change across γ (Sec. 3);
- :mod:`~kwta.explorer.toy`: the toy fit's curve broken at its jumps (Fig. 1);
- :mod:`~kwta.explorer.jobs`: the shared job queue (fair, cancellable);
- :mod:`~kwta.explorer.images`: decoding user uploads safely.
"""

from __future__ import annotations
