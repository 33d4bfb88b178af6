"""Service screen, as in the seed: draws every configured ROI with its name.

Used when setting up a camera so the installer can check where each ROI sits.
The node stamps the module name on the frame itself, so no caption is drawn here.
"""

from __future__ import annotations

import numpy as np

from camnode.processors.common import draw_rois


def process_image(src: np.ndarray) -> bool:
    """Draw all ROIs (labelled) onto ``src`` in place; called by the pipeline thread."""
    draw_rois(src, label=True)
    return True
