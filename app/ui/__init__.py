"""The pages' shared UI, one topic per module; every page does ``import ui`` and calls
``ui.<name>``. Where each name lives:

- :mod:`ui.config` — the device and the caps: ``DEVICE``, ``ON_GPU``, ``MAX_STEPS``,
  ``MAX_GRID``, ``MAX_QUERIES``, ``UPLOAD_TYPES``, ``PAPER_URL``, :func:`display_dir`;
- :mod:`ui.frame` — around every page: :func:`setup_logging`, :func:`sidebar_device_info`;
- :mod:`ui.state` — widgets bound to the URL: :func:`init_state` (binds a key to the URL),
  :func:`sync_url` (writes the bound keys), :func:`start_page`, :func:`url_value`,
  :func:`show_notices`, :func:`capped`, :func:`precision_picker` (an attack's steps);
- :mod:`ui.models` — :func:`model_cards`, :func:`get_model` (shared, never mutated),
  :func:`model_picker`, :func:`model_pair` (A beside B), :func:`model_label`,
  :func:`require_models`, :func:`unit_seconds`;
- :mod:`ui.images` — :func:`image_picker` (bundled image or upload; its keys bound
  to the URL), :func:`test_images`, :class:`PickedImage`;
- :mod:`ui.progress` — long work: :func:`run_with_progress`, :func:`expected_time`,
  :func:`remember_run`;
- :mod:`ui.results` — blocks more than one page draws: :func:`chart` (every Plotly chart,
  with the app's settings), :func:`attack_images`, :func:`attack_predictions`,
  :func:`attack_verdict`, :func:`attack_downloads`, :func:`run_downloads` (an attack run's
  JSON and script), :func:`masking_report`, :func:`masking_downloads`;
- :mod:`ui.downloads` — :func:`download`, :func:`provenance` (of a page's run),
  :func:`result_downloads` (a result's JSON with its provenance, and its Python script);
- :mod:`ui.text` — :func:`literal` (user text as inert code), :func:`pct`.

``app/`` is the script folder: ``streamlit run`` puts it on ``sys.path`` (``app/main.py``
does too, for other runners; the tests through pytest's ``pythonpath``).
"""

from ui.config import (
    DEVICE,
    MAX_GRID,
    MAX_QUERIES,
    MAX_STEPS,
    ON_GPU,
    PAPER_URL,
    UPLOAD_TYPES,
    display_dir,
)
from ui.downloads import download, provenance, result_downloads
from ui.frame import setup_logging, sidebar_device_info
from ui.images import PickedImage, image_picker, test_images
from ui.models import (
    get_model,
    model_cards,
    model_label,
    model_pair,
    model_picker,
    require_models,
    unit_seconds,
)
from ui.progress import expected_time, remember_run, run_with_progress
from ui.results import (
    attack_downloads,
    attack_images,
    attack_predictions,
    attack_verdict,
    chart,
    masking_downloads,
    masking_report,
    run_downloads,
)
from ui.state import (
    capped,
    init_state,
    precision_picker,
    show_notices,
    start_page,
    sync_url,
    url_value,
)
from ui.text import literal, pct

__all__ = [
    "DEVICE",
    "MAX_GRID",
    "MAX_QUERIES",
    "MAX_STEPS",
    "ON_GPU",
    "PAPER_URL",
    "UPLOAD_TYPES",
    "PickedImage",
    "attack_downloads",
    "attack_images",
    "attack_predictions",
    "attack_verdict",
    "capped",
    "chart",
    "display_dir",
    "download",
    "expected_time",
    "get_model",
    "image_picker",
    "init_state",
    "literal",
    "masking_downloads",
    "masking_report",
    "model_cards",
    "model_label",
    "model_pair",
    "model_picker",
    "pct",
    "precision_picker",
    "provenance",
    "remember_run",
    "require_models",
    "result_downloads",
    "run_downloads",
    "run_with_progress",
    "setup_logging",
    "show_notices",
    "sidebar_device_info",
    "start_page",
    "sync_url",
    "test_images",
    "unit_seconds",
    "url_value",
]
