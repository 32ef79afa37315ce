"""Sound-source localization as a tool: the full protocol over a manifest, and heat-map pictures.

The head lives in ``avkit.models.heads.localization``; the metrics on tensors in
``avkit.evaluation.localization``. This package runs a trained model over scenes.
"""

from avkit.localization.overlay import save_best_and_worst, save_cases, save_overlay
from avkit.localization.protocol import (
    BASELINES,
    LocalizationReport,
    evaluate_localization,
    heat_for_files,
    localization_head,
)

__all__ = ["BASELINES", "LocalizationReport", "evaluate_localization", "heat_for_files", "localization_head",
           "save_best_and_worst", "save_cases", "save_overlay"]  # fmt: skip
