"""The pages' computations, cached: one ``st.cache_data`` wrapper per library call a page
makes (``kwta.explorer.actions.PAGE_ACTIONS`` lists the main ones), queued through
:func:`kwta.explorer.jobs.queued_job` where they are heavy.

Every wrapper is keyed by the model's name and sha256 (the model itself is passed as
``_model``, not hashed: it is shared and never mutated), the image's pixels and every
setting; a progress sink is passed as ``_progress``. The library is called through its
modules where a test replaces a function there (``landscape.loss_landscape``,
``lesson.compute_lesson``): these modules are imported once, not rerun like a page. One
module per topic:

- :mod:`cached.attacks` — :func:`run_attack` (PGD with its trace, for the Live attack and
  the adaptive pages alike), :func:`run_adaptive`, :func:`run_masking`;
- :mod:`cached.landscape` — :func:`run_landscape`, :func:`run_weight_line`;
- :mod:`cached.patterns` — :func:`run_layers`, :func:`run_winner`, :func:`run_change`,
  :func:`run_overlap`, :func:`run_theorem1`;
- :mod:`cached.paths` — :func:`run_path` (PGD's walk on its own loss plane);
- :mod:`cached.fits` — :func:`run_fit` (toy fit), :func:`run_gamma` (Fig. 4 live),
  :func:`run_lesson`.
"""

from cached.attacks import run_adaptive, run_attack, run_masking
from cached.fits import run_fit, run_gamma, run_lesson
from cached.landscape import WEIGHT_BATCH, run_landscape, run_weight_line
from cached.paths import run_path
from cached.patterns import run_change, run_layers, run_overlap, run_theorem1, run_winner

__all__ = [
    "WEIGHT_BATCH",
    "run_adaptive",
    "run_attack",
    "run_change",
    "run_fit",
    "run_gamma",
    "run_landscape",
    "run_layers",
    "run_lesson",
    "run_masking",
    "run_overlap",
    "run_path",
    "run_theorem1",
    "run_weight_line",
    "run_winner",
]
